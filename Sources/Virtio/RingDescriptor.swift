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
}
