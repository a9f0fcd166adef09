/// What both chain walkers check of a chain's descriptors, and keep while they walk it: an
/// indirect table only where the ring allows one, a buffer only when its whole range
/// translates, and the chain's total length within what a used entry can say (u32).
@usableFromInline
struct ChainBufferCheck {
    @usableFromInline let memory: GuestMemoryTranslator
    /// INDIRECT_DESC was negotiated.
    @usableFromInline let indirectAllowed: Bool
    /// The bytes of the chain's buffers so far.
    @usableFromInline var totalLength: UInt64 = 0

    @inlinable @inline(__always)
    init(memory: GuestMemoryTranslator, indirectAllowed: Bool) {
        self.memory = memory
        self.indirectAllowed = indirectAllowed
    }

    /// The indirect table `descriptor` points at (2.7.5.3, 2.8.7), translated whole, when
    /// indirect descriptors are allowed and it holds 1 ... `maxEntries` entries of 16 bytes;
    /// nil otherwise.
    @inlinable @inline(__always)
    func indirectTable(_ descriptor: RingDescriptor, maxEntries: UInt32) -> (table: UnsafeRawPointer, entries: UInt32)? {
        let length = descriptor.length
        guard indirectAllowed, length != 0, length % 16 == 0, length / 16 <= maxEntries,
              let table = memory.guestPhysical(descriptor.address, length: UInt64(length)) else { return nil }
        return (UnsafeRawPointer(table), length / 16)
    }

    /// `descriptor` as a walk step, its whole range translated (a zero-length buffer has
    /// none; 0xFFFFFFFF fails unless mapped) and added to `totalLength`. nil when either
    /// fails: the chain is malformed.
    @inlinable @inline(__always)
    mutating func segment(_ descriptor: RingDescriptor) -> DescriptorChainStep? {
        guard let host = memory.guestPhysical(descriptor.address, length: UInt64(descriptor.length)) else { return nil }
        totalLength &+= UInt64(descriptor.length)  // at most 2^16 hops of < 2^32: cannot wrap
        guard totalLength <= UInt64(UInt32.max) else { return nil }
        return .segment(host: host, length: descriptor.length, guestAddress: descriptor.address,
                        writable: descriptor.flags & RingDescriptor.flagWrite != 0)
    }
}
