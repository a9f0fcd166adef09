/// `struct vhost_vring_state`: a u32 vring index and a u32 value (SET_VRING_NUM: the size;
/// SET/GET_VRING_BASE: the position). What the value may be depends on the ring layout,
/// so its handler checks it.
struct VringState: VhostUserPayload {
    static let size = VhostUserMessageRule.Payload.exact(8)
    let index: Int
    let num: UInt32

    init(decoding decoder: inout VhostUserPayloadDecoder) throws(VhostUserProtocolError) {
        // A u32 with high bits set is out of range, not truncated.
        index = try decoder.vringIndex(UInt64(try decoder.u32()))
        num = try decoder.u32()
    }
}

/// SET_VRING_NUM: a ring size in 1...32768. Split rings must also be a power of two (2.7),
/// packed rings need not (2.8): that depends on the features, so the handler checks it.
struct VringNum: VhostUserPayload {
    static let size = VringState.size
    let index: Int
    let num: UInt32

    init(decoding decoder: inout VhostUserPayloadDecoder) throws(VhostUserProtocolError) {
        let state = try VringState(decoding: &decoder)
        index = state.index
        num = state.num
    }

    func validate(for request: VhostUserRequest) throws(VhostUserProtocolError) {
        guard num >= 1, num <= UInt32(VhostUserLimits.maxRingSize) else { throw Self.refusal(num, request) }
    }

    static func refusal(_ num: UInt32, _ request: VhostUserRequest) -> VhostUserProtocolError {
        .invalidPayload(request, "ring size \(num) is not a power of two in 1...\(VhostUserLimits.maxRingSize)")
    }

    /// Valid after `validate`.
    var ringSize: Int { Int(num) }
}

/// SET_VRING_ENABLE: a `vhost_vring_state` whose value is 0 or 1.
struct VringEnable: VhostUserPayload {
    static let size = VringState.size
    let index: Int
    private let value: UInt32

    init(decoding decoder: inout VhostUserPayloadDecoder) throws(VhostUserProtocolError) {
        let state = try VringState(decoding: &decoder)
        index = state.index
        value = state.num
    }

    func validate(for request: VhostUserRequest) throws(VhostUserProtocolError) {
        guard value <= 1 else { throw .invalidPayload(request, "enable value \(value) is not 0 or 1") }
    }

    var enabled: Bool { value == 1 }
}
