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

/// One buffer's walk, for either ring layout's chain walker.
@usableFromInline
protocol DescriptorChainWalk {
    mutating func next() -> DescriptorChainStep
}

/// Walks one descriptor chain of a split ring (VIRTIO 1.1 2.7.5, 2.7.5.3 indirect), one
/// descriptor at a time. Each descriptor is loaded once into locals and only the copy is
/// validated and used: the guest may rewrite the table while we walk. The walk ends after at
/// most ring-size descriptors (table-size inside an indirect table), and never more than
/// `RingWalkLimits.maxChainDescriptors`, so a looping chain cannot hold the poll thread.
@usableFromInline
struct DescriptorChain: DescriptorChainWalk {
    @usableFromInline var table: UnsafeRawPointer
    @usableFromInline var tableEntries: UInt32
    @usableFromInline var index: UInt32
    @usableFromInline var hopsLeft: UInt32
    /// Descriptors read so far (ring and indirect): what the burst's walk budget is charged.
    @usableFromInline var walked: UInt32 = 0
    @usableFromInline var isFirst: Bool
    @usableFromInline var inIndirect: Bool
    @usableFromInline var finished: Bool
    @usableFromInline let ringSize: UInt32
    @usableFromInline var check: ChainBufferCheck

    /// `head` must already be checked to be < `ringSize`.
    @inlinable @inline(__always)
    init(descriptorTable: UnsafeRawPointer, ringSize: UInt16, head: UInt16, indirectAllowed: Bool, memory: GuestMemoryTranslator) {
        table = descriptorTable
        tableEntries = UInt32(ringSize)
        index = UInt32(head)
        hopsLeft = min(UInt32(ringSize), UInt32(RingWalkLimits.maxChainDescriptors))
        isFirst = true
        inIndirect = false
        finished = false
        self.ringSize = UInt32(ringSize)
        check = ChainBufferCheck(memory: memory, indirectAllowed: indirectAllowed)
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
            let descriptor = RingDescriptor(split: table + Int(index &* 16))
            let wasFirst = isFirst
            isFirst = false

            if descriptor.flags & RingDescriptor.flagIndirect != 0 {
                // 2.7.5.3.1: not with NEXT, never nested; we (like Linux and DPDK drivers)
                // only accept it as the whole chain.
                guard !inIndirect, wasFirst, descriptor.flags & RingDescriptor.flagNext == 0,
                      let (indirectTable, entries) = check.indirectTable(descriptor, maxEntries: ringSize) else {
                    finished = true
                    return .malformed
                }
                table = indirectTable
                tableEntries = entries
                index = 0
                hopsLeft = min(tableEntries, UInt32(RingWalkLimits.maxChainDescriptors))
                inIndirect = true
                continue
            }

            guard let step = check.segment(descriptor) else {
                finished = true
                return .malformed
            }
            if descriptor.flags & RingDescriptor.flagNext != 0 {
                guard UInt32(descriptor.next) < tableEntries else { finished = true; return .malformed }
                index = UInt32(descriptor.next)
            } else {
                finished = true
            }
            return step
        }
    }
}
