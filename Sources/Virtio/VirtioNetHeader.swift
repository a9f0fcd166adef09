import VhostSystem

/// The header in front of every frame in a virtio-net ring (VIRTIO 1.1 section 5.1.6): the
/// wire format is `VhostSystem.VnetHeader` (the kernel's packet sockets use the same struct);
/// here the virtio-net rules about it: its size and the features its offloads need.
public typealias VirtioNetHeader = VnetHeader

extension VirtioNetHeader {
    /// The header size the two sides agreed on.
    @inlinable
    public static func size(negotiated features: UInt64) -> Int {
        features & (VirtioNetFeature.version1.mask | VirtioNetFeature.mrgRxbuf.mask) != 0 ? modernSize : legacySize
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
