/// One descriptor of either ring layout, loaded once into a copy: the guest may rewrite the
/// ring while we use it. Both layouts' entries are 16 bytes, addr u64 at 0 and len u32 at 8,
/// then two u16 the layouts order differently: split (VIRTIO 1.1 2.7.5) flags at 12 and next
/// at 14; packed (2.8.13) the buffer id at 12 and flags at 14. The flag bits are the same.
@usableFromInline
struct RingDescriptor {
    @usableFromInline static let flagNext: UInt16 = 1
    @usableFromInline static let flagWrite: UInt16 = 2
    @usableFromInline static let flagIndirect: UInt16 = 4

    @usableFromInline let address: UInt64
    @usableFromInline let length: UInt32
    @usableFromInline let flags: UInt16
    /// The other u16: `next` of a split descriptor, `id` of a packed one.
    @usableFromInline let link: UInt16

    /// A split-ring entry; `entry` must point at 16 readable bytes.
    @inlinable @inline(__always)
    init(split entry: UnsafeRawPointer) {
        self.init(entry, flagsAt: 12, linkAt: 14)
    }

    /// A packed-ring entry; `entry` must point at 16 readable bytes.
    @inlinable @inline(__always)
    init(packed entry: UnsafeRawPointer) {
        self.init(entry, flagsAt: 14, linkAt: 12)
    }

    @inlinable @inline(__always)
    init(_ entry: UnsafeRawPointer, flagsAt flagsOffset: Int, linkAt linkOffset: Int) {
        address = UInt64(littleEndian: entry.loadUnaligned(fromByteOffset: 0, as: UInt64.self))
        length = UInt32(littleEndian: entry.loadUnaligned(fromByteOffset: 8, as: UInt32.self))
        flags = UInt16(littleEndian: entry.loadUnaligned(fromByteOffset: flagsOffset, as: UInt16.self))
        link = UInt16(littleEndian: entry.loadUnaligned(fromByteOffset: linkOffset, as: UInt16.self))
    }

    /// Split ring: the index of the next descriptor (with NEXT).
    @inlinable
    var next: UInt16 { link }

    /// Packed ring: the buffer id (2.8.6: the driver puts it in a buffer's last descriptor).
    @inlinable
    var id: UInt16 { link }

    /// The indirect table this descriptor points at (2.7.5.3, 2.8.7), translated whole, when it
    /// holds 1 ... `maxEntries` entries of 16 bytes; nil otherwise.
    @inlinable @inline(__always)
    func indirectTable(maxEntries: UInt32, memory: GuestMemoryTranslator) -> (table: UnsafeRawPointer, entries: UInt32)? {
        guard length != 0, length % 16 == 0, length / 16 <= maxEntries,
              let table = memory.guestPhysical(address, length: UInt64(length)) else { return nil }
        return (UnsafeRawPointer(table), length / 16)
    }

    /// This buffer as a walk step, its whole range translated (a zero-length buffer has none;
    /// 0xFFFFFFFF fails unless mapped) and added to the chain's `total`, which must stay within
    /// a used length (u32). nil when either fails: the chain is malformed.
    @inlinable @inline(__always)
    func segment(adding total: inout UInt64, memory: GuestMemoryTranslator) -> DescriptorChainStep? {
        guard let host = memory.guestPhysical(address, length: UInt64(length)) else { return nil }
        total &+= UInt64(length)  // at most 2^16 hops of < 2^32: cannot wrap
        guard total <= UInt64(UInt32.max) else { return nil }
        return .segment(host: host, length: length, guestAddress: address, writable: flags & Self.flagWrite != 0)
    }
}
