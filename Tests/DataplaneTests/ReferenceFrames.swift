import Virtio

/// Frames built independently of the switch's checksum and segmentation code: every field
/// written byte by byte, checksums by the textbook RFC 1071 loop over big-endian words.
/// What the switch produces is compared with these byte for byte.
enum ReferenceFrames {
    static let source: [UInt8] = [2, 0, 0, 0, 0, 0xA]
    static let destination: [UInt8] = [2, 0, 0, 0, 0, 0xB]
    static let ipv4Source: [UInt8] = [10, 0, 0, 1], ipv4Destination: [UInt8] = [10, 0, 0, 2]
    static let ipv6Source: [UInt8] = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]
    static let ipv6Destination: [UInt8] = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]
    static let tcpFIN: UInt8 = 0x01, tcpPSH: UInt8 = 0x08, tcpACK: UInt8 = 0x10, tcpCWR: UInt8 = 0x80

    struct Shape {
        var ipv6 = false
        var udp = false
        var vlan = false
    }

    /// The complemented one's-complement sum of big-endian 16-bit words (RFC 1071).
    static func checksum(_ bytes: [UInt8]) -> UInt16 {
        var sum: UInt32 = 0
        var i = 0
        while i + 1 < bytes.count {
            sum += UInt32(bytes[i]) << 8 | UInt32(bytes[i + 1])
            i += 2
        }
        if i < bytes.count { sum += UInt32(bytes[i]) << 8 }
        while sum >> 16 != 0 { sum = (sum & 0xffff) + (sum >> 16) }
        return ~UInt16(sum)
    }

    static func bigEndian16(_ value: Int) -> [UInt8] { [UInt8(value >> 8 & 0xff), UInt8(value & 0xff)] }
    static func bigEndian32(_ value: UInt32) -> [UInt8] { [UInt8(value >> 24), UInt8(value >> 16 & 0xff), UInt8(value >> 8 & 0xff), UInt8(value & 0xff)] }

    static func ethernetHeader(_ shape: Shape) -> [UInt8] {
        destination + source + (shape.vlan ? [0x81, 0x00, 0x00, 0x2a] : []) + (shape.ipv6 ? [0x86, 0xdd] : [0x08, 0x00])
    }

    static func pseudoHeader(_ shape: Shape, transportLength: Int) -> [UInt8] {
        let proto: UInt8 = shape.udp ? 17 : 6
        if shape.ipv6 {
            return ipv6Source + ipv6Destination + bigEndian32(UInt32(transportLength)) + [0, 0, 0, proto]
        }
        return ipv4Source + ipv4Destination + [0, proto] + bigEndian16(transportLength)
    }

    /// TCP with a 12-byte timestamp option (data offset 8), or UDP; checksum field zero.
    static func transportHeader(_ shape: Shape, payloadLength: Int, sequence: UInt32, tcpFlags: UInt8) -> [UInt8] {
        if shape.udp { return bigEndian16(4000) + bigEndian16(5000) + bigEndian16(8 + payloadLength) + [0, 0] }
        return bigEndian16(4000) + bigEndian16(5000) + bigEndian32(sequence) + bigEndian32(0x1234_5678)
            + [0x80, tcpFlags] + bigEndian16(0xfaf0) + [0, 0] + [0, 0]
            + [1, 1, 8, 10, 0, 0, 0, 7, 0, 0, 0, 9]
    }

    /// A complete frame with correct IP and TCP/UDP checksums.
    static func frame(_ shape: Shape, payload: [UInt8], sequence: UInt32 = 1000, tcpFlags: UInt8 = tcpACK | tcpPSH,
                      identification: UInt16 = 0x4242) -> [UInt8] {
        var transport = transportHeader(shape, payloadLength: payload.count, sequence: sequence, tcpFlags: tcpFlags) + payload
        var sum = checksum(pseudoHeader(shape, transportLength: transport.count) + transport)
        if shape.udp && sum == 0 { sum = 0xffff }
        let checksumAt = shape.udp ? 6 : 16
        transport[checksumAt] = UInt8(sum >> 8)
        transport[checksumAt + 1] = UInt8(sum & 0xff)
        let network: [UInt8]
        if shape.ipv6 {
            network = [0x60, 0, 0, 0] + bigEndian16(transport.count) + [shape.udp ? 17 : 6, 64] + ipv6Source + ipv6Destination
        } else {
            var header = [0x45, 0] + bigEndian16(20 + transport.count) + bigEndian16(Int(identification)) + [0x40, 0, 64, shape.udp ? 17 : 6, 0, 0]
                + ipv4Source + ipv4Destination
            let headerSum = checksum(header)
            header[10] = UInt8(headerSum >> 8)
            header[11] = UInt8(headerSum & 0xff)
            network = header
        }
        return ethernetHeader(shape) + network + transport
    }

    static func networkOffset(_ shape: Shape) -> Int { shape.vlan ? 18 : 14 }
    static func transportOffset(_ shape: Shape) -> Int { networkOffset(shape) + (shape.ipv6 ? 40 : 20) }
    static func headerLength(_ shape: Shape) -> Int { transportOffset(shape) + (shape.udp ? 8 : 32) }
    static func checksumOffset(_ shape: Shape) -> Int { shape.udp ? 6 : 16 }

    /// `frame` as a sender with checksum offload hands it over: the L4 checksum field holds
    /// the folded pseudo-header sum, not complemented (what Linux writes for CHECKSUM_PARTIAL).
    static func partial(_ frame: [UInt8], _ shape: Shape) -> [UInt8] {
        var result = frame
        let transportLength = frame.count - transportOffset(shape)
        let field = ~checksum(pseudoHeader(shape, transportLength: transportLength))
        let at = transportOffset(shape) + checksumOffset(shape)
        result[at] = UInt8(field >> 8)
        result[at + 1] = UInt8(field & 0xff)
        return result
    }

    /// The header a TSO/USO sender puts in front of `partial(frame)`.
    static func gsoHeader(_ shape: Shape, segmentSize: Int, ecn: Bool = false) -> VirtioNetHeader {
        let type = shape.udp ? VirtioNetHeader.gsoUDPL4 : (shape.ipv6 ? VirtioNetHeader.gsoTCPv6 : VirtioNetHeader.gsoTCPv4)
        return VirtioNetHeader(flags: VirtioNetHeader.flagNeedsChecksum, gsoType: type | (ecn ? VirtioNetHeader.gsoECN : 0),
                               headerLength: UInt16(headerLength(shape)), gsoSize: UInt16(segmentSize),
                               checksumStart: UInt16(transportOffset(shape)), checksumOffset: UInt16(checksumOffset(shape)))
    }

    /// The segments a NIC makes of `payload` sent as one super-frame: each a complete
    /// frame, IPv4 identification counting up, sequence numbers advancing, FIN and PSH
    /// on the last segment only, CWR on the first only.
    static func segments(_ shape: Shape, payload: [UInt8], segmentSize: Int, sequence: UInt32 = 1000,
                         tcpFlags: UInt8 = tcpACK | tcpPSH, identification: UInt16 = 0x4242) -> [[UInt8]] {
        var result: [[UInt8]] = []
        var offset = 0
        var index = 0
        while offset < payload.count {
            let chunk = Array(payload[offset..<min(payload.count, offset + segmentSize)])
            let isLast = offset + chunk.count == payload.count
            var flags = tcpFlags
            if !isLast { flags &= ~(tcpFIN | tcpPSH) }
            if index > 0 { flags &= ~tcpCWR }
            result.append(frame(shape, payload: chunk, sequence: sequence &+ UInt32(offset), tcpFlags: flags,
                                identification: identification &+ UInt16(index)))
            offset += chunk.count
            index += 1
        }
        return result
    }

    /// The IP fragments a NIC makes of a UDP datagram sent with UFO: every fragment's data
    /// a multiple of 8 bytes but the last, the UDP header (with the whole datagram's
    /// checksum) in the first, IPv4 keeping the datagram's identification with DF cleared,
    /// IPv6 with a fragment header carrying `identification`.
    static func fragments(_ shape: Shape, payload: [UInt8], fragmentSize: Int, identification: UInt32 = 1) -> [[UInt8]] {
        let whole = frame(shape, payload: payload)
        let datagram = Array(whole[transportOffset(shape)...])
        var result: [[UInt8]] = []
        var offset = 0
        while offset < datagram.count {
            let chunk = Array(datagram[offset..<min(datagram.count, offset + fragmentSize)])
            let more = offset + chunk.count < datagram.count
            if shape.ipv6 {
                let fragmentHeader: [UInt8] = [17, 0] + bigEndian16(offset | (more ? 1 : 0)) + bigEndian32(identification)
                let network: [UInt8] = [0x60, 0, 0, 0] + bigEndian16(8 + chunk.count) + [44, 64] + ipv6Source + ipv6Destination
                result.append(ethernetHeader(shape) + network + fragmentHeader + chunk)
            } else {
                var header = [0x45, 0] + bigEndian16(20 + chunk.count) + bigEndian16(0x4242)
                    + bigEndian16((more ? 0x2000 : 0) | offset / 8) + [64, 17, 0, 0] + ipv4Source + ipv4Destination
                let headerSum = checksum(header)
                header[10] = UInt8(headerSum >> 8)
                header[11] = UInt8(headerSum & 0xff)
                result.append(ethernetHeader(shape) + header + chunk)
            }
            offset += chunk.count
        }
        return result
    }

    static func payload(_ count: Int, seed: UInt8 = 1) -> [UInt8] {
        (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ Int(seed)) }
    }
}
