import VhostSystem

/// SET_VRING_KICK / SET_VRING_CALL / SET_VRING_ERR: a u64 with the vring index in bits 0-7
/// and NOFD in bit 8 (vhost-user.rst; nothing else is defined), and one fd unless NOFD is
/// set. The fd is taken from the message: the ring keeps it.
struct VringFile: VhostUserPayload {
    static let size = VhostUserMessageRule.Payload.exact(8)
    static let noFdFlag: UInt64 = 1 << 8
    static let indexMask: UInt64 = 0xff

    let index: Int
    /// nil with NOFD: the front-end polls (kick) or wants no interrupts (call).
    let descriptor: FileDescriptor?

    init(decoding decoder: inout VhostUserPayloadDecoder) throws(VhostUserProtocolError) {
        let word = try decoder.u64()
        let request = decoder.request
        let count = decoder.descriptors.count
        let noFd = word & Self.noFdFlag != 0
        if noFd {
            if count > 0 { throw .descriptorWithNoFdFlag(request) }
        } else if count == 0 {
            throw .missingDescriptor(request)
        } else if count > 1 {
            throw .unexpectedDescriptors(request, count: count)
        }
        guard word & ~(Self.noFdFlag | Self.indexMask) == 0 else {
            throw .invalidPayload(request, "undefined bits set in the vring index word 0x\(String(word, radix: 16))")
        }
        index = try decoder.vringIndex(word & Self.indexMask)
        descriptor = noFd ? nil : decoder.takeDescriptor()
    }

    func closeTakenDescriptors() { descriptor?.close() }
}
