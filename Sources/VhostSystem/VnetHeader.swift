/// struct virtio_net_hdr (VIRTIO 1.1 section 5.1.6), little-endian: the header in front of
/// every frame in a virtio-net ring (12 bytes with VERSION_1 or MRG_RXBUF, 10 bytes without
/// num_buffers otherwise), and, its first 10 bytes, what an AF_PACKET socket with
/// PACKET_VNET_HDR reads and writes (Linux uses the same struct). One type for both: `Virtio`
/// names it `VirtioNetHeader` and adds the feature rules; `PacketSocket` calls it
/// `VnetHeaderFields`.
public struct VnetHeader: Equatable, Sendable {
    public static let flagNeedsChecksum: UInt8 = 1
    public static let flagDataValid: UInt8 = 2
    public static let flagRSCInfo: UInt8 = 4

    public static let gsoNone: UInt8 = 0
    public static let gsoTCPv4: UInt8 = 1
    public static let gsoUDP: UInt8 = 3
    public static let gsoTCPv6: UInt8 = 4
    public static let gsoUDPL4: UInt8 = 5
    public static let gsoECN: UInt8 = 0x80

    public var flags: UInt8
    public var gsoType: UInt8
    public var headerLength: UInt16
    public var gsoSize: UInt16
    public var checksumStart: UInt16
    public var checksumOffset: UInt16
    /// num_buffers: how many receive buffers a merged frame uses (receive side only).
    public var bufferCount: UInt16

    @inlinable
    public init(flags: UInt8 = 0, gsoType: UInt8 = 0, headerLength: UInt16 = 0, gsoSize: UInt16 = 0,
                checksumStart: UInt16 = 0, checksumOffset: UInt16 = 0, bufferCount: UInt16 = 0) {
        self.flags = flags
        self.gsoType = gsoType
        self.headerLength = headerLength
        self.gsoSize = gsoSize
        self.checksumStart = checksumStart
        self.checksumOffset = checksumOffset
        self.bufferCount = bufferCount
    }

    public static let legacySize = 10
    public static let modernSize = 12

    /// Reads a header from `size` (10 or 12) bytes at `bytes`; num_buffers is 0 for 10.
    @inlinable
    public init(loadingFrom bytes: UnsafeRawPointer, size: Int) {
        // Safe: the caller provides `size` >= 10 readable bytes; loads are unaligned.
        flags = bytes.load(fromByteOffset: 0, as: UInt8.self)
        gsoType = bytes.load(fromByteOffset: 1, as: UInt8.self)
        headerLength = UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: 2, as: UInt16.self))
        gsoSize = UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: 4, as: UInt16.self))
        checksumStart = UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: 6, as: UInt16.self))
        checksumOffset = UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: 8, as: UInt16.self))
        bufferCount = size >= 12 ? UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: 10, as: UInt16.self)) : 0
    }

    /// Writes the first `size` (10 or 12) bytes of this header to `bytes`.
    @inlinable
    public func store(to bytes: UnsafeMutableRawPointer, size: Int) {
        // Safe: the caller provides `size` >= 10 writable bytes; stores are unaligned-tolerant.
        bytes.storeBytes(of: flags, toByteOffset: 0, as: UInt8.self)
        bytes.storeBytes(of: gsoType, toByteOffset: 1, as: UInt8.self)
        bytes.storeBytes(of: headerLength.littleEndian, toByteOffset: 2, as: UInt16.self)
        bytes.storeBytes(of: gsoSize.littleEndian, toByteOffset: 4, as: UInt16.self)
        bytes.storeBytes(of: checksumStart.littleEndian, toByteOffset: 6, as: UInt16.self)
        bytes.storeBytes(of: checksumOffset.littleEndian, toByteOffset: 8, as: UInt16.self)
        if size >= 12 { bytes.storeBytes(of: bufferCount.littleEndian, toByteOffset: 10, as: UInt16.self) }
    }

    /// Writes the first `size` (10 or 12) bytes of this header to `bytes` unless they already
    /// hold exactly that (returns whether it wrote). A receive buffer the driver recycles
    /// usually still holds the header it last got, and the driver has that line in its cache:
    /// not writing it saves moving the line to this core and back (DPDK does the same).
    @inlinable @inline(__always)
    public func storeIfDifferent(to bytes: UnsafeMutableRawPointer, size: Int) -> Bool {
        let low = UInt64(flags) | UInt64(gsoType) &<< 8 | UInt64(headerLength) &<< 16 | UInt64(gsoSize) &<< 32
            | UInt64(checksumStart) &<< 48
        let high = UInt32(checksumOffset) | UInt32(bufferCount) &<< 16
        // Safe: the caller provides `size` >= 10 readable and writable bytes; the compare only
        // reads them (a guest changing them meanwhile gets what it wrote into its own buffer).
        let same = bytes.loadUnaligned(as: UInt64.self) == low.littleEndian && (size >= 12
            ? bytes.loadUnaligned(fromByteOffset: 8, as: UInt32.self) == high.littleEndian
            : bytes.loadUnaligned(fromByteOffset: 8, as: UInt16.self) == checksumOffset.littleEndian)
        if same { return false }
        store(to: bytes, size: size)
        return true
    }

    /// The kernel's 10 bytes (no num_buffers: 0).
    @inlinable
    public init(loadingFrom bytes: UnsafeRawPointer) {
        self.init(loadingFrom: bytes, size: Self.legacySize)
    }

    /// Writes the kernel's 10 bytes.
    @inlinable
    public func store(to bytes: UnsafeMutableRawPointer) {
        store(to: bytes, size: Self.legacySize)
    }
}
