/// Walks one buffer of a packed ring (VIRTIO 1.1 2.8.6 chaining, 2.8.7 indirect): ring
/// descriptors from `position` on, wrapping at the ring's end, while NEXT is set; or, when the
/// one ring descriptor is INDIRECT, every entry of its table. Each descriptor is loaded once
/// and only the copy is used (the guest may rewrite the ring while we walk). At most
/// `maxRingDescriptors` ring descriptors are walked (what is left of one lap of the ring in
/// this burst, and never more than `RingWalkLimits.maxChainDescriptors`): a burst never
/// consumes more than the ring's size in slots, so the used position it writes stays inside
/// the ring, and a chain of NEXT flags cannot hold the poll thread.
///
/// After the walk `ringDescriptors` is how many ring slots the buffer used (what the used
/// index advances by) and `bufferID` the id of its last ring descriptor (2.8.6: the driver
/// puts the Buffer ID there).
@usableFromInline
struct PackedDescriptorChain: DescriptorChainWalk {
    @usableFromInline let ring: UnsafeRawPointer
    @usableFromInline let ringSize: UInt16
    @usableFromInline let maxRingDescriptors: UInt16
    @usableFromInline var position: UInt16
    @usableFromInline var ringDescriptors: UInt16 = 0
    @usableFromInline var bufferID: UInt16 = 0
    /// The last ring descriptor read had NEXT (true before the first).
    @usableFromInline var moreInRing = true
    @usableFromInline var indirectTable: UnsafeRawPointer? = nil
    @usableFromInline var indirectCount: UInt32 = 0
    @usableFromInline var indirectIndex: UInt32 = 0
    @usableFromInline var finished = false
    @usableFromInline var check: ChainBufferCheck

    /// Descriptors read so far, ring and indirect: what the burst's walk budget is charged.
    @inlinable
    var walked: Int { Int(ringDescriptors) &+ Int(indirectIndex) }

    /// `position` must be < `ringSize`; `slotsLeft` is how many slots of the ring's lap the
    /// burst has not consumed yet (1 ... ringSize).
    @inlinable @inline(__always)
    init(ring: UnsafeRawPointer, ringSize: UInt16, position: UInt16, slotsLeft: Int, indirectAllowed: Bool,
         memory: GuestMemoryTranslator) {
        self.ring = ring
        self.ringSize = ringSize
        maxRingDescriptors = UInt16(truncatingIfNeeded: min(slotsLeft, RingWalkLimits.maxChainDescriptors))
        self.position = position
        check = ChainBufferCheck(memory: memory, indirectAllowed: indirectAllowed)
    }

    @inlinable @inline(__always)
    mutating func next() -> DescriptorChainStep {
        while true {
            if finished { return .end }
            if let table = indirectTable {
                guard indirectIndex < indirectCount else { finished = true; return .end }
                // Safe: indirectIndex < indirectCount and the table was translated whole (count * 16 bytes).
                let entry = RingDescriptor(packed: table + Int(indirectIndex &* 16))
                indirectIndex &+= 1
                // 2.8.7: only WRITE is meaningful in the table; a nested table is refused
                // (NEXT is ignored: the table's entries are consecutive).
                guard entry.flags & RingDescriptor.flagIndirect == 0,
                      let step = check.segment(entry) else { finished = true; return .malformed }
                return step
            }
            guard moreInRing else { finished = true; return .end }
            // A buffer longer than what is left of the lap means NEXT flags that never end.
            guard ringDescriptors < maxRingDescriptors else { finished = true; return .malformed }
            // Safe: position < ringSize and the ring holds ringSize * 16 mapped bytes (PackedVirtqueueLayout).
            let entry = RingDescriptor(packed: ring + Int(position) &* 16)
            ringDescriptors &+= 1
            position &+= 1
            if position == ringSize { position = 0 }
            bufferID = entry.id
            moreInRing = entry.flags & RingDescriptor.flagNext != 0

            if entry.flags & RingDescriptor.flagIndirect != 0 {
                // 2.8.7: never with NEXT; like the split ring, only as the whole buffer.
                guard ringDescriptors == 1, !moreInRing,
                      let (table, entries) = check.indirectTable(entry, maxEntries: UInt32(min(Int(ringSize), RingWalkLimits.maxChainDescriptors)))
                else {
                    finished = true
                    return .malformed
                }
                indirectTable = table
                indirectCount = entries
                indirectIndex = 0
                continue
            }
            guard let step = check.segment(entry) else { finished = true; return .malformed }
            return step
        }
    }

    /// After a refused descriptor or a stop before the end: follows the remaining ring
    /// descriptors' NEXT flags (touching nothing they point at) so `ringDescriptors` and
    /// `bufferID` describe the whole buffer. False when the chain does not end within
    /// `maxRingDescriptors`: its extent is then unknown and the ring cannot be used.
    @inlinable @inline(__always)
    mutating func skipToEnd() -> Bool {
        finished = true
        while moreInRing {
            guard ringDescriptors < maxRingDescriptors else { return false }
            // Safe: position < ringSize, as in next().
            let entry = ring + Int(position) &* 16
            bufferID = UInt16(littleEndian: entry.loadUnaligned(fromByteOffset: 12, as: UInt16.self))
            moreInRing = UInt16(littleEndian: entry.loadUnaligned(fromByteOffset: 14, as: UInt16.self)) & RingDescriptor.flagNext != 0
            ringDescriptors &+= 1
            position &+= 1
            if position == ringSize { position = 0 }
        }
        return true
    }
}
