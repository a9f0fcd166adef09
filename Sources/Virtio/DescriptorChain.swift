/// One step of a descriptor chain walk.
@usableFromInline
enum DescriptorChainStep {
    /// A buffer, already translated: the whole of [guestAddress, guestAddress + length) lies
    /// in one region and `host` points at its start.
    case segment(host: UnsafeMutableRawPointer, length: UInt32, guestAddress: UInt64, writable: Bool)
    case end
    /// The chain broke a rule; stop using it (VIRTIO 1.1 2.7.5, UNTRUSTED-INPUT.md).
    case malformed
}

/// One split-ring descriptor (VIRTIO 1.1 2.7.5: addr u64, len u32, flags u16, next u16),
/// loaded once into a copy: the guest may rewrite the table while we use it.
@usableFromInline
struct SplitDescriptor {
    @usableFromInline let address: UInt64
    @usableFromInline let length: UInt32
    @usableFromInline let flags: UInt16
    @usableFromInline let next: UInt16

    /// `entry` must point at 16 readable bytes.
    @inlinable @inline(__always)
    init(loadingFrom entry: UnsafeRawPointer) {
        address = UInt64(littleEndian: entry.loadUnaligned(fromByteOffset: 0, as: UInt64.self))
        length = UInt32(littleEndian: entry.loadUnaligned(fromByteOffset: 8, as: UInt32.self))
        flags = UInt16(littleEndian: entry.loadUnaligned(fromByteOffset: 12, as: UInt16.self))
        next = UInt16(littleEndian: entry.loadUnaligned(fromByteOffset: 14, as: UInt16.self))
    }
}

/// Walks one descriptor chain of a split ring (VIRTIO 1.1 2.7.5, 2.7.5.3 indirect), one
/// descriptor at a time. Each descriptor is loaded once into locals and only the copy is
/// validated and used: the guest may rewrite the table while we walk. The walk ends after at
/// most ring-size descriptors (table-size inside an indirect table), and never more than
/// `RingWalkLimits.maxChainDescriptors`, so a looping chain cannot hold the poll thread.
@usableFromInline
struct DescriptorChain {
    @usableFromInline static let flagNext: UInt16 = 1
    @usableFromInline static let flagWrite: UInt16 = 2
    @usableFromInline static let flagIndirect: UInt16 = 4

    @usableFromInline var table: UnsafeRawPointer
    @usableFromInline var tableEntries: UInt32
    @usableFromInline var index: UInt32
    @usableFromInline var hopsLeft: UInt32
    /// Descriptors read so far (ring and indirect): what the burst's walk budget is charged.
    @usableFromInline var walked: UInt32 = 0
    @usableFromInline var totalLength: UInt64
    @usableFromInline var isFirst: Bool
    @usableFromInline var inIndirect: Bool
    @usableFromInline var finished: Bool
    @usableFromInline let ringSize: UInt32
    @usableFromInline let indirectAllowed: Bool
    @usableFromInline let memory: GuestMemoryTranslator

    /// `head` must already be checked to be < `ringSize`.
    @inlinable @inline(__always)
    init(descriptorTable: UnsafeRawPointer, ringSize: UInt16, head: UInt16, indirectAllowed: Bool, memory: GuestMemoryTranslator) {
        table = descriptorTable
        tableEntries = UInt32(ringSize)
        index = UInt32(head)
        hopsLeft = min(UInt32(ringSize), UInt32(RingWalkLimits.maxChainDescriptors))
        totalLength = 0
        isFirst = true
        inIndirect = false
        finished = false
        self.ringSize = UInt32(ringSize)
        self.indirectAllowed = indirectAllowed
        self.memory = memory
    }

    @inlinable @inline(__always)
    mutating func next() -> DescriptorChainStep {
        while true {
            if finished { return .end }
            guard hopsLeft > 0 else { finished = true; return .malformed }  // loop or over-long chain
            hopsLeft &-= 1
            walked &+= 1
            // Safe: index < tableEntries, and the table holds tableEntries * 16 mapped bytes
            // (ring table: checked by VirtqueueLayout; indirect table: translated below).
            let descriptor = SplitDescriptor(loadingFrom: table + Int(index &* 16))
            let (address, length, flags, nextIndex) = (descriptor.address, descriptor.length, descriptor.flags, descriptor.next)
            let wasFirst = isFirst
            isFirst = false

            if flags & Self.flagIndirect != 0 {
                // 2.7.5.3.1: not with NEXT, never nested; we (like Linux and DPDK drivers)
                // only accept it as the whole chain.
                guard indirectAllowed, !inIndirect, wasFirst, flags & Self.flagNext == 0,
                      length != 0, length % 16 == 0, length / 16 <= ringSize,
                      let indirectTable = memory.guestPhysical(address, length: UInt64(length)) else {
                    finished = true
                    return .malformed
                }
                table = UnsafeRawPointer(indirectTable)
                tableEntries = length / 16
                index = 0
                hopsLeft = min(tableEntries, UInt32(RingWalkLimits.maxChainDescriptors))
                inIndirect = true
                continue
            }

            // A zero-length buffer has no range to translate; 0xFFFFFFFF fails unless mapped.
            guard let host = memory.guestPhysical(address, length: UInt64(length)) else {
                finished = true
                return .malformed
            }
            totalLength &+= UInt64(length)  // at most 2^16 hops of < 2^32: cannot wrap
            guard totalLength <= UInt64(UInt32.max) else { finished = true; return .malformed }
            if flags & Self.flagNext != 0 {
                guard UInt32(nextIndex) < tableEntries else { finished = true; return .malformed }
                index = UInt32(nextIndex)
            } else {
                finished = true
            }
            return .segment(host: host, length: length, guestAddress: address, writable: flags & Self.flagWrite != 0)
        }
    }
}
