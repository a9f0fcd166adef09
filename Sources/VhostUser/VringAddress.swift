/// `struct vhost_vring_addr` (SET_VRING_ADDR): a u32 index, u32 flags, then the descriptor,
/// used and avail areas as front-end virtual addresses and the used ring's guest-physical
/// address for the dirty log. Whether the areas are inside guest memory is the handler's
/// check (it needs the memory table).
struct VringAddress: VhostUserPayload {
    static let size = VhostUserMessageRule.Payload.exact(40)
    let index: Int
    let addresses: VhostUserVring.Addresses

    init(decoding decoder: inout VhostUserPayloadDecoder) throws(VhostUserProtocolError) {
        index = try decoder.vringIndex(UInt64(try decoder.u32()))
        let flags = try decoder.u32()
        let descriptor = try decoder.u64(), used = try decoder.u64(), avail = try decoder.u64(), log = try decoder.u64()
        addresses = VhostUserVring.Addresses(flags: flags, descriptor: descriptor, used: used, avail: avail, log: log)
    }

    /// Only VHOST_VRING_F_LOG (bit 0) is defined.
    func validate(for request: VhostUserRequest) throws(VhostUserProtocolError) {
        guard addresses.flags & ~VhostUserVring.Addresses.logFlag == 0 else {
            throw .invalidPayload(request, "undefined flags 0x\(String(addresses.flags, radix: 16))")
        }
    }
}
