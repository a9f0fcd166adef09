import TestSupport

/// Guest memory with two 32768-entry split rings, the largest the protocol allows, filled
/// so that every available entry costs the daemon the most hops a chain may take: a ring
/// makes one burst cost up to 32768 x 32768 (2^30) descriptor reads unless the daemon caps
/// the work per burst (issue 16, "Work per burst is unbounded").
///
/// Layout (guest-physical = offset in the memfd): ring r at r MiB: descriptors +0 (512 KiB),
/// avail +0x80000 (64 KiB + 6), used +0xA0000 (256 KiB + 6). Indirect tables of 32768 entries
/// at 2 MiB (ring 0) and 2.5 MiB (ring 1); the one buffer everything points at, at 3 MiB.
final class HugeRingGuest {
    static let ringSize = 32768
    static let memorySize = 4 << 20
    static let buffer = 3 << 20
    static let bufferLength: UInt32 = 64

    enum Shape: String {
        /// Descriptor i -> i + 1, the last back to 0: one chain through the whole table that
        /// never ends, so each head walks the 32768-hop limit before it is found malformed.
        case longChain = "long-chain"
        /// Every descriptor is INDIRECT, pointing at the same table of 32768 entries that are
        /// chained the same way (a table-long loop).
        case indirectMax = "indirect-max"
    }

    let memory: FakeFrontendMemory

    init(_ shape: Shape) throws {
        memory = try FakeFrontendMemory(name: "hostile-huge-ring", size: UInt64(Self.memorySize))
        for ring in 0..<2 { fill(ring, shape) }
    }

    static func descriptorTable(_ ring: Int) -> Int { ring << 20 }
    static func avail(_ ring: Int) -> Int { descriptorTable(ring) + 0x80000 }
    static func used(_ ring: Int) -> Int { descriptorTable(ring) + 0xA0000 }
    static func indirectTable(_ ring: Int) -> Int { (2 << 20) + ring * (Self.ringSize * 16) }

    func placement(_ ring: Int) -> Context.RingPlacement {
        Context.RingPlacement(size: UInt32(Self.ringSize), descriptor: memory.userAddress(Self.descriptorTable(ring)),
                              avail: memory.userAddress(Self.avail(ring)), used: memory.userAddress(Self.used(ring)))
    }

    /// The guest driver of ring `ring` in this layout.
    private func driver(_ ring: Int) -> SplitGuestDriverRing {
        SplitGuestDriverRing(fixture: memory.fixture, size: Self.ringSize, descriptorTableAddress: UInt64(Self.descriptorTable(ring)),
                             availAddress: UInt64(Self.avail(ring)), usedAddress: UInt64(Self.used(ring)))
    }

    private func fill(_ ring: Int, _ shape: Shape) {
        let driver = driver(ring)
        // Ring 0 is the guest's receive ring: its buffers are device-writable.
        let write: UInt16 = ring == 0 ? SplitGuestDriverRing.write : 0
        switch shape {
        case .longChain:
            writeLoop(driver, at: Self.descriptorTable(ring), flags: write)
        case .indirectMax:
            writeLoop(driver, at: Self.indirectTable(ring), flags: write)
            for index in 0..<Self.ringSize {
                driver.writeDescriptor(index, address: UInt64(Self.indirectTable(ring)), length: UInt32(Self.ringSize * 16),
                                       flags: SplitGuestDriverRing.indirect)
            }
        }
        // Every head offered at once: avail[i] = i, avail.idx = 32768 (= size: a full ring).
        for slot in 0..<Self.ringSize { driver.writeAvailSlot(UInt16(slot), head: UInt16(slot)) }
        driver.setAvailIndex(UInt16(Self.ringSize))
    }

    /// 32768 descriptors, i -> (i + 1) mod 32768, each NEXT: a loop as long as the table.
    private func writeLoop(_ driver: SplitGuestDriverRing, at table: Int, flags: UInt16) {
        for index in 0..<Self.ringSize {
            driver.writeDescriptor(at: UInt64(table + index * 16), address: UInt64(Self.buffer), length: Self.bufferLength,
                                   flags: SplitGuestDriverRing.next | flags, next: UInt16((index + 1) % Self.ringSize))
        }
    }
}
