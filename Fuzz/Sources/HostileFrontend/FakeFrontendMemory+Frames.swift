import TestSupport

/// The frames and buffers the cases post in the guest memory they hand over (the test kit's
/// `FakeFrontendMemory` at guest-physical 0: ring 0 receives, ring 1 transmits; buffers from
/// 0x10000), through its split-ring driver.
extension FakeFrontendMemory {
    /// A well-formed 60-byte frame after its 12-byte virtio-net header, to a MAC nobody has:
    /// the switch floods it.
    static let transmitFrame: [UInt8] = [UInt8](repeating: 0, count: 12)
        + [0x02, 0xee, 0, 0, 0, 0x01, 0x02, 0xee, 0, 0, 0, 0x02, 0x08, 0x00] + [UInt8](repeating: 0x5a, count: 46)

    /// `count` (at most 128) copies of `transmitFrame` on ring 1, the guest's transmit ring,
    /// at 0x10000 + i * 128, on the heads that follow avail.idx, published at once.
    func postTransmit(count: Int) {
        let transmit = ring(1)
        let start = transmit.availIndex
        var heads: [UInt16] = []
        for i in 0..<min(count, 128) {
            let buffer = UInt64(0x10000 + i * 128)
            fixture.write(Self.transmitFrame, at: buffer)
            let head = Int(start &+ UInt16(i)) % Self.ringSize
            transmit.writeDescriptor(head, address: buffer, length: UInt32(Self.transmitFrame.count))
            heads.append(UInt16(head))
        }
        transmit.publish(heads: heads)
    }

    /// One descriptor at the next free head of `ring`, published.
    func postBuffer(_ ring: Int, address: Int, length: Int, flags: UInt16) {
        let driver = self.ring(ring)
        let head = driver.availIndex % UInt16(Self.ringSize)
        driver.writeDescriptor(Int(head), address: UInt64(address), length: UInt32(length), flags: flags)
        driver.publish(heads: [head])
    }
}
