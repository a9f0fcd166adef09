/// One packed-ring descriptor (VIRTIO 1.1 2.8.13: addr u64, len u32, id u16, flags u16),
/// loaded once into a copy: the guest may rewrite the ring while we use it.
@usableFromInline
struct PackedDescriptor {
    @usableFromInline let address: UInt64
    @usableFromInline let length: UInt32
    @usableFromInline let id: UInt16
    @usableFromInline let flags: UInt16

    /// `entry` must point at 16 readable bytes.
    @inlinable @inline(__always)
    init(loadingFrom entry: UnsafeRawPointer) {
        address = UInt64(littleEndian: entry.loadUnaligned(fromByteOffset: 0, as: UInt64.self))
        length = UInt32(littleEndian: entry.loadUnaligned(fromByteOffset: 8, as: UInt32.self))
        id = UInt16(littleEndian: entry.loadUnaligned(fromByteOffset: 12, as: UInt16.self))
        flags = UInt16(littleEndian: entry.loadUnaligned(fromByteOffset: 14, as: UInt16.self))
    }
}

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
struct PackedDescriptorChain {
    @usableFromInline static let flagNext: UInt16 = 1
    @usableFromInline static let flagWrite: UInt16 = 2
    @usableFromInline static let flagIndirect: UInt16 = 4

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
    @usableFromInline var totalLength: UInt64 = 0
    @usableFromInline var finished = false
    @usableFromInline let indirectAllowed: Bool
    @usableFromInline let memory: GuestMemoryTranslator

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
        self.indirectAllowed = indirectAllowed
        self.memory = memory
    }

    @inlinable @inline(__always)
    mutating func next() -> DescriptorChainStep {
        while true {
            if finished { return .end }
            if let table = indirectTable {
                guard indirectIndex < indirectCount else { finished = true; return .end }
                // Safe: indirectIndex < indirectCount and the table was translated whole (count * 16 bytes).
                let entry = PackedDescriptor(loadingFrom: table + Int(indirectIndex &* 16))
                indirectIndex &+= 1
                let (address, length, flags) = (entry.address, entry.length, entry.flags)
                // 2.8.7: only WRITE is meaningful in the table; a nested table is refused
                // (NEXT is ignored: the table's entries are consecutive).
                guard flags & Self.flagIndirect == 0 else { finished = true; return .malformed }
                return segment(address: address, length: length, flags: flags)
            }
            guard moreInRing else { finished = true; return .end }
            // A buffer longer than what is left of the lap means NEXT flags that never end.
            guard ringDescriptors < maxRingDescriptors else { finished = true; return .malformed }
            // Safe: position < ringSize and the ring holds ringSize * 16 mapped bytes (PackedVirtqueueLayout).
            let entry = PackedDescriptor(loadingFrom: ring + Int(position) &* 16)
            let (address, length, id, flags) = (entry.address, entry.length, entry.id, entry.flags)
            ringDescriptors &+= 1
            position &+= 1
            if position == ringSize { position = 0 }
            bufferID = id
            moreInRing = flags & Self.flagNext != 0

            if flags & Self.flagIndirect != 0 {
                // 2.8.7: never with NEXT; like the split ring, only as the whole buffer.
                guard indirectAllowed, ringDescriptors == 1, !moreInRing, length != 0, length % 16 == 0,
                      length / 16 <= UInt32(min(Int(ringSize), RingWalkLimits.maxChainDescriptors)),
                      let table = memory.guestPhysical(address, length: UInt64(length)) else {
                    finished = true
                    return .malformed
                }
                indirectTable = UnsafeRawPointer(table)
                indirectCount = length / 16
                indirectIndex = 0
                continue
            }
            return segment(address: address, length: length, flags: flags)
        }
    }

    @inlinable @inline(__always)
    mutating func segment(address: UInt64, length: UInt32, flags: UInt16) -> DescriptorChainStep {
        // A zero-length buffer has no range to translate; 0xFFFFFFFF fails unless mapped.
        guard let host = memory.guestPhysical(address, length: UInt64(length)) else {
            finished = true
            return .malformed
        }
        totalLength &+= UInt64(length)  // at most 2^16 hops of < 2^32: cannot wrap
        guard totalLength <= UInt64(UInt32.max) else { finished = true; return .malformed }
        return .segment(host: host, length: length, guestAddress: address, writable: flags & Self.flagWrite != 0)
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
            moreInRing = UInt16(littleEndian: entry.loadUnaligned(fromByteOffset: 14, as: UInt16.self)) & Self.flagNext != 0
            ringDescriptors &+= 1
            position &+= 1
            if position == ringSize { position = 0 }
        }
        return true
    }
}
