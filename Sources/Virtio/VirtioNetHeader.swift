/// The header in front of every frame in a virtio-net ring (VIRTIO 1.1 section 5.1.6),
/// little-endian. 12 bytes with VERSION_1 or MRG_RXBUF, 10 bytes (no num_buffers) otherwise.
public struct VirtioNetHeader: Equatable, Sendable {
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

    /// The header size the two sides agreed on.
    @inlinable
    public static func size(negotiated features: UInt64) -> Int {
        features & (VirtioNetFeature.version1.mask | VirtioNetFeature.mrgRxbuf.mask) != 0 ? modernSize : legacySize
    }

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

    /// The offload features a receiver must have negotiated to accept this header as is;
    /// nil if the header asks for something no feature allows (unknown GSO type).
    @inlinable
    public var requiredReceiveFeatures: UInt64? {
        requiredFeatures(checksum: .guestCsum, ecn: .guestEcn, tcpv4: .guestTso4, tcpv6: .guestTso6, udp: .guestUfo)
    }

    /// True when a receiver that negotiated `features` may get this header as it is (the
    /// plain header, the common case, needs no feature check).
    @inlinable @inline(__always)
    public func isAcceptable(toReceiverWith features: UInt64) -> Bool {
        isPlain || requiredReceiveFeatures.map { features & $0 == $0 } == true
    }

    /// The features a sender must have negotiated to use this header (host_* side).
    @inlinable
    public var requiredTransmitFeatures: UInt64? {
        requiredFeatures(checksum: .csum, ecn: .hostEcn, tcpv4: .hostTso4, tcpv6: .hostTso6, udp: .hostUfo)
    }

    /// The mask of the features, from one side's five (receive: guest_*, transmit: csum and
    /// host_*), that this header's checksum request and GSO type need; nil for ECN without
    /// GSO or an unknown GSO type.
    @inlinable @inline(__always)
    func requiredFeatures(checksum: VirtioNetFeature, ecn: VirtioNetFeature, tcpv4: VirtioNetFeature, tcpv6: VirtioNetFeature,
                          udp: VirtioNetFeature) -> UInt64? {
        var required: UInt64 = 0
        if flags & Self.flagNeedsChecksum != 0 { required |= checksum.mask }
        if gsoType & Self.gsoECN != 0 { required |= ecn.mask }
        switch gsoType & ~Self.gsoECN {
        case Self.gsoNone: if gsoType & Self.gsoECN != 0 { return nil }
        case Self.gsoTCPv4: required |= tcpv4.mask
        case Self.gsoTCPv6: required |= tcpv6.mask
        case Self.gsoUDP: required |= udp.mask
        default: return nil
        }
        return required
    }

    /// Checks a transmitted header against the frame it describes (UNTRUSTED-INPUT.md): the
    /// checksum field must lie inside the frame, GSO needs a segment size and only offloads
    /// that were negotiated may be asked for.
    @inlinable @inline(__always)
    public func isValidForTransmit(frameLength: Int, negotiated features: UInt64) -> Bool {
        // The common case, a frame without offloads, needs no feature check.
        if isPlain { return true }
        return isValidOffloadForTransmit(frameLength: frameLength, negotiated: features)
    }

    /// No checksum to complete, no segmentation (flags and gso_type both 0).
    @inlinable @inline(__always)
    public var isPlain: Bool { flags == 0 && gsoType == Self.gsoNone }

    @inlinable @inline(never)
    func isValidOffloadForTransmit(frameLength: Int, negotiated features: UInt64) -> Bool {
        guard let required = requiredTransmitFeatures, features & required == required else { return false }
        if flags & Self.flagNeedsChecksum != 0 {
            // Int arithmetic on two UInt16 values and 2 cannot overflow.
            guard Int(checksumStart) + Int(checksumOffset) + 2 <= frameLength else { return false }
        }
        if gsoType != Self.gsoNone {
            // A segment size of 0 or of the whole frame, or headers longer than the frame,
            // cannot describe a super-frame (hdr_len is only a hint otherwise: Linux puts the
            // linear part's length there).
            guard gsoSize != 0, Int(gsoSize) < frameLength, Int(headerLength) <= frameLength else { return false }
        }
        return true
    }
}
