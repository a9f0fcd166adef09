import CVhostShims
import Glibc
import VhostSystem

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

    let memory: GuestMemoryFile

    init(_ shape: Shape) throws {
        memory = try GuestMemoryFile(name: "hostile-huge-ring", size: Self.memorySize)
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

    private func fill(_ ring: Int, _ shape: Shape) {
        // Ring 0 is the guest's receive ring: its buffers are device-writable.
        let write: UInt16 = ring == 0 ? 2 : 0
        switch shape {
        case .longChain:
            writeLoop(at: Self.descriptorTable(ring), flags: write)
        case .indirectMax:
            writeLoop(at: Self.indirectTable(ring), flags: write)
            for index in 0..<Self.ringSize {
                writeDescriptor(at: Self.descriptorTable(ring), index, address: UInt64(Self.indirectTable(ring)),
                                length: UInt32(Self.ringSize * 16), flags: 4, next: 0)
            }
        }
        // Every head offered at once: avail[i] = i, avail.idx = 32768 (= size: a full ring).
        for slot in 0..<Self.ringSize {
            memory.mapping.base.storeBytes(of: UInt16(slot).littleEndian, toByteOffset: Self.avail(ring) + 4 + slot * 2, as: UInt16.self)
        }
        vhost_shims_store_release_u16(memory.mapping.base + Self.avail(ring) + 2, UInt16(Self.ringSize).littleEndian)
    }

    /// 32768 descriptors, i -> (i + 1) mod 32768, each NEXT: a loop as long as the table.
    private func writeLoop(at table: Int, flags: UInt16) {
        for index in 0..<Self.ringSize {
            writeDescriptor(at: table, index, address: UInt64(Self.buffer), length: Self.bufferLength, flags: 1 | flags,
                            next: UInt16((index + 1) % Self.ringSize))
        }
    }

    private func writeDescriptor(at table: Int, _ index: Int, address: UInt64, length: UInt32, flags: UInt16, next: UInt16) {
        let base = memory.mapping.base + table + index * 16
        base.storeBytes(of: address.littleEndian, as: UInt64.self)
        base.storeBytes(of: length.littleEndian, toByteOffset: 8, as: UInt32.self)
        base.storeBytes(of: flags.littleEndian, toByteOffset: 12, as: UInt16.self)
        base.storeBytes(of: next.littleEndian, toByteOffset: 14, as: UInt16.self)
    }
}
