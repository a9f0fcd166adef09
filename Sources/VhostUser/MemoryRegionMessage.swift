/// ADD_MEM_REG / REM_MEM_REG (`VhostUserMemRegMsg`): u64 padding and one region. ADD maps
/// it from its fd; REM names a region to remove, looked up rather than mapped (older
/// front-ends attach the region's fd: it is closed unused).
struct MemoryRegionMessage: VhostUserPayload {
    static let size = VhostUserMessageRule.Payload.exact(8 + MemoryRegion.size)
    let region: MemoryRegion

    init(decoding decoder: inout VhostUserPayloadDecoder) throws(VhostUserProtocolError) {
        _ = try decoder.u64()  // padding
        let fd = decoder.request == .addMemReg ? decoder.descriptors.first : nil
        region = try MemoryRegion(decoding: &decoder, fd: fd)
    }

    /// A region to remove need not be valid: an invalid one matches none.
    func validate(for request: VhostUserRequest) throws(VhostUserProtocolError) {
        if request == .addMemReg { try region.validate(for: request) }
    }
}
