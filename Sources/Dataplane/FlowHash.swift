import Virtio

/// The flow of a frame as a 32-bit hash, for spreading a burst over a guest's receive
/// rings: one flow always lands on one ring, so its frames stay in order. A few loads and
/// a multiply, no allocation: Ethernet with one optional 802.1Q/802.1ad tag, then IPv4 or
/// IPv6 addresses and protocol, plus the TCP/UDP/SCTP ports of an unfragmented datagram;
/// anything else hashes on its two MACs. Every load is bounded by the frame's length (the
/// frames are in the switch's own buffers, at least 14 bytes long).
enum FlowHash {
    private static let ipv4: UInt16 = 0x0800
    private static let ipv6: UInt16 = 0x86DD
    private static let vlan: UInt16 = 0x8100
    private static let qinq: UInt16 = 0x88A8
    private static let golden: UInt64 = 0x9E37_79B9_7F4A_7C15

    @inline(__always)
    static func of(_ buffer: PacketBuffer) -> UInt32 {
        // Unsafe: every offset read below is checked against `length` first.
        let frame = UnsafeRawPointer(buffer.data)
        let length = buffer.length
        var l3 = 14
        var type = UInt16(bigEndian: frame.loadUnaligned(fromByteOffset: 12, as: UInt16.self))
        if (type == vlan || type == qinq) && length >= 18 {
            type = UInt16(bigEndian: frame.loadUnaligned(fromByteOffset: 16, as: UInt16.self))
            l3 = 18
        }
        var key: UInt64
        if type == ipv4 && length >= l3 + 20 {
            let protocolNumber = frame.load(fromByteOffset: l3 + 9, as: UInt8.self)
            key = frame.loadUnaligned(fromByteOffset: l3 + 12, as: UInt64.self) ^ UInt64(protocolNumber)
            let headerLength = Int(frame.load(fromByteOffset: l3, as: UInt8.self) & 0x0F) &* 4
            // More-fragments flag or fragment offset: only the first fragment has the ports.
            let fragment = UInt16(bigEndian: frame.loadUnaligned(fromByteOffset: l3 + 6, as: UInt16.self)) & 0x3FFF
            if fragment == 0 && headerLength >= 20 && carriesPorts(protocolNumber) && length >= l3 + headerLength + 4 {
                key ^= UInt64(frame.loadUnaligned(fromByteOffset: l3 + headerLength, as: UInt32.self)) &* golden
            }
        } else if type == ipv6 && length >= l3 + 40 {
            let nextHeader = frame.load(fromByteOffset: l3 + 6, as: UInt8.self)
            key = frame.loadUnaligned(fromByteOffset: l3 + 8, as: UInt64.self)
                ^ frame.loadUnaligned(fromByteOffset: l3 + 16, as: UInt64.self).byteSwapped
                ^ frame.loadUnaligned(fromByteOffset: l3 + 24, as: UInt64.self) &* 3
                ^ frame.loadUnaligned(fromByteOffset: l3 + 32, as: UInt64.self) &* 5
                ^ UInt64(nextHeader)
            if carriesPorts(nextHeader) && length >= l3 + 44 {
                key ^= UInt64(frame.loadUnaligned(fromByteOffset: l3 + 40, as: UInt32.self)) &* golden
            }
        } else {
            key = frame.loadUnaligned(as: UInt64.self) ^ UInt64(frame.loadUnaligned(fromByteOffset: 8, as: UInt32.self)) << 16
        }
        key = (key ^ (key >> 29)) &* golden
        return UInt32(truncatingIfNeeded: key >> 32)
    }

    /// TCP, UDP, SCTP: the first four bytes of the L4 header are the two ports.
    @inline(__always)
    private static func carriesPorts(_ protocolNumber: UInt8) -> Bool {
        protocolNumber == 6 || protocolNumber == 17 || protocolNumber == 132
    }

    /// `hash` mapped onto 0..<count without a division (multiply-shift: the hash's high bits
    /// pick the ring, as `hash % count` would up to a negligible bias).
    @inline(__always)
    static func index(_ hash: UInt32, among count: Int) -> Int {
        Int(truncatingIfNeeded: (UInt64(hash) &* UInt64(truncatingIfNeeded: count)) >> 32)
    }
}
