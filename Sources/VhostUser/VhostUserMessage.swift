import VhostSystem

/// One complete message as received: header, payload and the fds that came with it.
/// The fds are owned: whatever a handler does not keep closes when the message goes.
public struct VhostUserMessage {
    public var header: VhostUserHeader
    public var payload: [UInt8]
    public var descriptors: [FileDescriptor]
    /// More than 8 fds arrived (the kernel or the receive path dropped and closed the rest).
    public var descriptorsTruncated: Bool

    public init(header: VhostUserHeader, payload: [UInt8], descriptors: [FileDescriptor] = [], descriptorsTruncated: Bool = false) {
        self.header = header
        self.payload = payload
        self.descriptors = descriptors
        self.descriptorsTruncated = descriptorsTruncated
    }

    public var request: VhostUserRequest? { VhostUserRequest(rawValue: header.request) }

    /// Closes every attached fd now (a refused message must not keep them open until the
    /// last reference goes).
    public func closeDescriptors() {
        for descriptor in descriptors { descriptor.close() }
    }

    /// A reply to `request`: version 1 plus the reply flag, and `payload`.
    public static func reply(to request: UInt32, payload: [UInt8]) -> [UInt8] {
        var bytes = VhostUserHeader(request: request, flags: VhostUserHeader.version | VhostUserHeader.replyFlag,
                                    size: UInt32(payload.count)).encoded
        bytes.append(contentsOf: payload)
        return bytes
    }

    /// The common u64 reply payload (GET_FEATURES, REPLY_ACK, ...).
    public static func u64Payload(_ value: UInt64) -> [UInt8] {
        var writer = LittleEndianWriter()
        writer.u64(value)
        return writer.bytes
    }
}
