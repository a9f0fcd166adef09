/// A request's payload as a typed value that decodes and checks itself, as rust-vmm's
/// `vhost_user::message` types do: handlers get these values, never bytes.
///
/// Two steps, at two points of the dispatch (`VhostUserConnection`):
/// - `init(decoding:)` before the request may cost anything: the fields, the fds that go
///   with them (NOFD, one per region) and the vring index. A failure is refused at once.
/// - `validate(for:)` after the ring-change budget was charged and the queues withdrawn, just
///   before the handler: the fields' values. So a flood of invalid ring-changing requests
///   is budgeted like a flood of valid ones.
protocol VhostUserPayload: Sendable {
    /// The payload sizes the request may have (vhost-user.rst "Message types"); the
    /// dispatcher checks it before decoding.
    static var size: VhostUserMessageRule.Payload { get }

    init(decoding decoder: inout VhostUserPayloadDecoder) throws(VhostUserProtocolError)

    func validate(for request: VhostUserRequest) throws(VhostUserProtocolError)

    /// Closes the fds the payload took from the message, when its request is refused after
    /// decoding (the others close with the message).
    func closeTakenDescriptors()
}

extension VhostUserPayload {
    func validate(for request: VhostUserRequest) throws(VhostUserProtocolError) {}
    func closeTakenDescriptors() {}
}

// MARK: Payloads without fields or with one u64

/// No payload (GET_*, SET_OWNER, RESET_OWNER, RESET_DEVICE).
struct EmptyPayload: VhostUserPayload {
    static let size = VhostUserMessageRule.Payload.exact(0)
    init(decoding decoder: inout VhostUserPayloadDecoder) {}
}

/// SET_LOG_FD: a u64 or nothing, read by nobody (the fd is not needed with LOG_SHMFD).
struct LogFdPayload: VhostUserPayload {
    static let size = VhostUserMessageRule.Payload.variable(0...8)
    init(decoding decoder: inout VhostUserPayloadDecoder) {}
}

/// A request this back-end does not support: refused before decoding. Any size that fits in
/// a message, so the payload is skipped and the framing kept. Never decodes.
struct UnsupportedPayload: VhostUserPayload {
    static let size = VhostUserMessageRule.Payload.variable(0...VhostUserHeader.maxPayloadSize)
    let request: VhostUserRequest
    init(decoding decoder: inout VhostUserPayloadDecoder) throws(VhostUserProtocolError) {
        throw .unsupportedRequest(decoder.request)
    }
}

/// A u64 feature mask (SET_FEATURES, SET_PROTOCOL_FEATURES); the handler checks it against
/// what was offered.
struct FeatureBits: VhostUserPayload {
    static let size = VhostUserMessageRule.Payload.exact(8)
    let mask: UInt64
    init(decoding decoder: inout VhostUserPayloadDecoder) throws(VhostUserProtocolError) { mask = try decoder.u64() }
}

/// SET_STATUS: the VIRTIO device status byte (VIRTIO 1.1 2.1), sent as a u64.
struct DeviceStatus: VhostUserPayload {
    static let size = VhostUserMessageRule.Payload.exact(8)
    private let raw: UInt64
    init(decoding decoder: inout VhostUserPayloadDecoder) throws(VhostUserProtocolError) { raw = try decoder.u64() }

    func validate(for request: VhostUserRequest) throws(VhostUserProtocolError) {
        guard raw <= 0xff else { throw .invalidPayload(request, "status 0x\(String(raw, radix: 16)) above 0xff") }
    }

    /// Valid after `validate`.
    var status: UInt8 { UInt8(truncatingIfNeeded: raw) }
}

/// NET_SET_MTU: a u64 inside `VhostUserLimits.mtuRange`.
struct MTU: VhostUserPayload {
    static let size = VhostUserMessageRule.Payload.exact(8)
    private let raw: UInt64
    init(decoding decoder: inout VhostUserPayloadDecoder) throws(VhostUserProtocolError) { raw = try decoder.u64() }

    func validate(for request: VhostUserRequest) throws(VhostUserProtocolError) {
        guard VhostUserLimits.mtuRange.contains(raw) else {
            throw .invalidPayload(request, "MTU \(raw) outside \(VhostUserLimits.mtuRange)")
        }
    }

    /// Valid after `validate`.
    var mtu: Int { Int(raw) }
}

/// SEND_RARP: the guest's MAC in the first 6 of 8 bytes. Only the guest's own address makes
/// sense: unicast (I/G bit clear) and not all zeros.
struct RarpMac: VhostUserPayload {
    static let size = VhostUserMessageRule.Payload.exact(8)
    let mac: [UInt8]
    init(decoding decoder: inout VhostUserPayloadDecoder) throws(VhostUserProtocolError) { mac = try decoder.bytes(6) }

    func validate(for request: VhostUserRequest) throws(VhostUserProtocolError) {
        guard mac[0] & 1 == 0, mac.contains(where: { $0 != 0 }) else {
            throw .invalidPayload(request, "RARP MAC is not a unicast address")
        }
    }

    var text: String { mac.map { String($0, radix: 16) }.joined(separator: ":") }
}
