import VhostSystem

/// Reads a payload whose size the dispatcher checked: every read is bounds-checked and a
/// short payload is an error, not a zero. Holds the message's fds: a payload that keeps one
/// (SET_VRING_KICK/CALL/ERR) takes it, the rest close with the message.
struct VhostUserPayloadDecoder {
    let request: VhostUserRequest
    /// The session's vring count, for the index checks.
    let vringCount: Int
    let payloadSize: Int
    private var reader: LittleEndianReader
    private(set) var descriptors: [FileDescriptor]

    init(_ message: VhostUserMessage, request: VhostUserRequest, vringCount: Int) {
        self.request = request
        self.vringCount = vringCount
        payloadSize = message.payload.count
        reader = LittleEndianReader(message.payload)
        descriptors = message.descriptors
    }

    var remaining: Int { reader.remaining }

    mutating func u64() throws(VhostUserProtocolError) -> UInt64 {
        guard let value = reader.u64() else { throw short(8) }
        return value
    }

    mutating func u32() throws(VhostUserProtocolError) -> UInt32 {
        guard let value = reader.u32() else { throw short(4) }
        return value
    }

    mutating func bytes(_ count: Int) throws(VhostUserProtocolError) -> [UInt8] {
        guard let value = reader.bytes(count) else { throw short(count) }
        return value
    }

    /// The payload ended before a field: only a payload type whose `size` disagrees with
    /// what it reads gets here.
    private func short(_ width: Int) -> VhostUserProtocolError {
        .wrongPayloadSize(request, size: payloadSize, expected: "at least \(reader.offset + width)")
    }

    /// A vring index inside the session's rings (2 * max queue pairs).
    func vringIndex(_ index: UInt64) throws(VhostUserProtocolError) -> Int {
        guard index < UInt64(vringCount) else { throw .vringIndexOutOfRange(request, index: index, count: vringCount) }
        return Int(index)
    }

    /// Removes the first fd from the message and hands it over (the payload now owns it).
    mutating func takeDescriptor() -> FileDescriptor? {
        descriptors.isEmpty ? nil : descriptors.removeFirst()
    }
}
