/// `struct vhost_vring_addr` (SET_VRING_ADDR): a u32 index, u32 flags, then the descriptor,
/// used and avail areas as front-end virtual addresses and the used ring's guest-physical
/// address for the dirty log. Whether the areas are inside guest memory is the handler's
/// check (it needs the memory table).
struct VringAddress: VhostUserPayload {
    static let size = VhostUserMessageRule.Payload.exact(40)
    let index: Int
    let addresses: VringAddresses

    init(decoding decoder: inout VhostUserPayloadDecoder) throws(VhostUserProtocolError) {
        index = try decoder.vringIndex(UInt64(try decoder.u32()))
        let flags = try decoder.u32()
        let descriptor = try decoder.u64(), used = try decoder.u64(), avail = try decoder.u64(), log = try decoder.u64()
        addresses = VringAddresses(flags: flags, descriptor: descriptor, used: used, avail: avail, log: log)
    }

    /// Only VHOST_VRING_F_LOG (bit 0) is defined.
    func validate(for request: VhostUserRequest) throws(VhostUserProtocolError) {
        guard addresses.flags & ~VringAddresses.logFlag == 0 else {
            throw .invalidPayload(request, "undefined flags 0x\(String(addresses.flags, radix: 16))")
        }
    }
}

/// SET_VRING_ADDR's fields after the index: what a ring keeps (`VhostUserVring.addresses`)
/// and what a hand-over carries (`VhostUserSessionExport.Vring.addresses`).
public struct VringAddresses: Equatable, Sendable {
    public var flags: UInt32
    public var descriptor: UInt64
    public var used: UInt64
    public var avail: UInt64
    public var log: UInt64

    public init(flags: UInt32, descriptor: UInt64, used: UInt64, avail: UInt64, log: UInt64) {
        self.flags = flags
        self.descriptor = descriptor
        self.used = used
        self.avail = avail
        self.log = log
    }

    /// SET_VRING_ADDR flags bit 0 (VHOST_VRING_F_LOG): log writes to the used ring.
    var logUsed: Bool { flags & Self.logFlag != 0 }
    static let logFlag: UInt32 = 1
}
