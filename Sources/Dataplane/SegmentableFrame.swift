import Virtio

/// A GSO super-frame cut into wire-sized pieces the way a NIC does, for destinations that
/// did not negotiate the matching GUEST_* offload: TCP over IPv4/IPv6 and UDP segmentation
/// (USO) into segments, UDP fragmentation offload (UFO) into IP fragments. The headers are
/// found by parsing the frame: the sender's hdr_len and csum_start are hints, not trusted
/// (UNTRUSTED-INPUT.md).
struct SegmentableFrame {
    static let ethernetHeaderLength = 14
    static let tcp: UInt8 = 6
    static let udp: UInt8 = 17

    let frame: UnsafeRawPointer
    let length: Int
    let networkOffset: Int
    let isIPv6: Bool
    let transportOffset: Int
    let transportProtocol: UInt8
    /// Bytes copied into every piece: Ethernet, IP and TCP/UDP headers (UFO: without the
    /// UDP header, which belongs to the fragmented datagram).
    let headerLength: Int
    /// Payload bytes per piece (UFO: gso_size rounded down to a multiple of 8).
    let segmentSize: Int
    /// UFO: the pieces are IP fragments of one UDP datagram.
    let isFragmentation: Bool
    /// Where the protocol number of the transport header is (IPv6: the last next-header
    /// field before it; a fragment header goes in there).
    let nextHeaderOffset: Int

    var payloadLength: Int { length &- headerLength }
    var segmentCount: Int { (payloadLength &+ segmentSize &- 1) / segmentSize }

    /// Parses `length` bytes at `frame` for a header with GSO type `gsoType` and segment
    /// size `segmentSize`; nil when the frame is not what the type says, is an IP fragment,
    /// carries no payload, or its headers run past its end.
    init?(frame: UnsafeRawPointer, length: Int, gsoType: UInt8, segmentSize: Int) {
        isFragmentation = gsoType & ~VirtioNetHeader.gsoECN == VirtioNetHeader.gsoUDP
        // Fragment offsets count 8-byte units.
        self.segmentSize = isFragmentation ? segmentSize & ~7 : segmentSize
        guard self.segmentSize > 0 else { return nil }
        self.frame = frame
        self.length = length
        // Unsafe (all loads below): each offset is checked against `length` before its load.
        guard length >= Self.ethernetHeaderLength else { return nil }
        var offset = 12
        var etherType = Self.loadBigEndian16(frame, offset)
        // Up to two VLAN tags (802.1Q / 802.1ad).
        var tags = 0
        while (etherType == 0x8100 || etherType == 0x88a8) && tags < 2 {
            guard offset &+ 6 <= length else { return nil }
            offset &+= 4
            etherType = Self.loadBigEndian16(frame, offset)
            tags &+= 1
        }
        networkOffset = offset &+ 2
        var transport: UInt8
        var transportStart: Int
        var protocolField: Int
        switch etherType {
        case 0x0800:
            guard networkOffset &+ 20 <= length else { return nil }
            let versionAndLength = frame.load(fromByteOffset: networkOffset, as: UInt8.self)
            let ipHeaderLength = Int(versionAndLength & 0x0f) &* 4
            guard versionAndLength >> 4 == 4, ipHeaderLength >= 20, networkOffset &+ ipHeaderLength <= length else { return nil }
            // More-fragments or a fragment offset: not a whole datagram.
            guard Self.loadBigEndian16(frame, networkOffset &+ 6) & 0x3fff == 0 else { return nil }
            isIPv6 = false
            protocolField = networkOffset &+ 9
            transport = frame.load(fromByteOffset: protocolField, as: UInt8.self)
            transportStart = networkOffset &+ ipHeaderLength
        case 0x86dd:
            guard networkOffset &+ 40 <= length,
                  frame.load(fromByteOffset: networkOffset, as: UInt8.self) >> 4 == 6 else { return nil }
            isIPv6 = true
            protocolField = networkOffset &+ 6
            transport = frame.load(fromByteOffset: protocolField, as: UInt8.self)
            transportStart = networkOffset &+ 40
            // Hop-by-hop and destination options may precede TCP/UDP. A routing header
            // changes the pseudo-header's destination and a fragment header makes a
            // fragment: neither is segmented.
            var extensions = 0
            while (transport == 0 || transport == 60) && extensions < 4 {
                guard transportStart &+ 8 <= length else { return nil }
                protocolField = transportStart
                transport = frame.load(fromByteOffset: transportStart, as: UInt8.self)
                transportStart &+= (Int(frame.load(fromByteOffset: transportStart &+ 1, as: UInt8.self)) &+ 1) &* 8
                extensions &+= 1
            }
        default:
            return nil
        }
        switch gsoType & ~VirtioNetHeader.gsoECN {
        case VirtioNetHeader.gsoTCPv4: guard !isIPv6, transport == Self.tcp else { return nil }
        case VirtioNetHeader.gsoTCPv6: guard isIPv6, transport == Self.tcp else { return nil }
        case VirtioNetHeader.gsoUDPL4, VirtioNetHeader.gsoUDP: guard transport == Self.udp else { return nil }
        default: return nil
        }
        transportProtocol = transport
        transportOffset = transportStart
        nextHeaderOffset = protocolField
        if isFragmentation {
            guard transportStart &+ 8 < length else { return nil }
            headerLength = transportStart
            return
        }
        if transport == Self.tcp {
            guard transportStart &+ 20 <= length else { return nil }
            let dataOffset = Int(frame.load(fromByteOffset: transportStart &+ 12, as: UInt8.self) >> 4) &* 4
            guard dataOffset >= 20 else { return nil }
            headerLength = transportStart &+ dataOffset
        } else {
            headerLength = transportStart &+ 8
        }
        guard headerLength < length else { return nil }
    }

    /// Not for UFO (see `writeFragment`). Writes segment `index` (0 ..< segmentCount) to `output`, which has room for
    /// `headerLength + segmentSize` bytes, and returns its length. Every segment gets
    /// complete IP and TCP/UDP checksums.
    func writeSegment(_ index: Int, to output: UnsafeMutableRawPointer) -> Int {
        let payloadStart = index &* segmentSize
        let chunk = min(segmentSize, payloadLength &- payloadStart)
        let isLast = index == segmentCount &- 1
        // Unsafe: the headers and [headerLength + payloadStart, + chunk) lie inside the
        // frame; the output holds headerLength + chunk bytes.
        output.copyMemory(from: frame, byteCount: headerLength)
        output.advanced(by: headerLength).copyMemory(from: frame + (headerLength &+ payloadStart), byteCount: chunk)
        let transportLength = headerLength &- transportOffset &+ chunk
        if isIPv6 {
            Self.storeBigEndian16(output, networkOffset &+ 4, UInt16(truncatingIfNeeded: transportOffset &- networkOffset &- 40 &+ transportLength))
        } else {
            let ipHeaderLength = transportOffset &- networkOffset
            Self.storeBigEndian16(output, networkOffset &+ 2, UInt16(truncatingIfNeeded: ipHeaderLength &+ transportLength))
            let identification = Self.loadBigEndian16(UnsafeRawPointer(frame), networkOffset &+ 4)
            Self.storeBigEndian16(output, networkOffset &+ 4, identification &+ UInt16(truncatingIfNeeded: index))
            output.storeBytes(of: 0, toByteOffset: networkOffset &+ 10, as: UInt16.self)
            let sum = InternetChecksum.add(output + networkOffset, count: ipHeaderLength, to: 0)
            output.storeBytes(of: ~InternetChecksum.fold(sum), toByteOffset: networkOffset &+ 10, as: UInt16.self)
        }
        let checksumOffset: Int
        if transportProtocol == Self.tcp {
            let sequence = UInt32(bigEndian: frame.loadUnaligned(fromByteOffset: transportOffset &+ 4, as: UInt32.self))
            let segmentSequence = sequence &+ UInt32(truncatingIfNeeded: payloadStart)
            output.storeBytes(of: segmentSequence.bigEndian, toByteOffset: transportOffset &+ 4, as: UInt32.self)
            var flags = frame.load(fromByteOffset: transportOffset &+ 13, as: UInt8.self)
            if !isLast { flags &= ~(0x01 | 0x08) }  // FIN and PSH only on the last segment
            if index != 0 { flags &= ~0x80 }        // CWR only on the first (ECN)
            output.storeBytes(of: flags, toByteOffset: transportOffset &+ 13, as: UInt8.self)
            checksumOffset = transportOffset &+ 16
        } else {
            Self.storeBigEndian16(output, transportOffset &+ 4, UInt16(truncatingIfNeeded: transportLength))
            checksumOffset = transportOffset &+ 6
        }
        output.storeBytes(of: 0, toByteOffset: checksumOffset, as: UInt16.self)
        var sum = pseudoHeaderSum(transportLength: transportLength)
        sum = InternetChecksum.add(output + transportOffset, count: transportLength, to: sum)
        output.storeBytes(of: InternetChecksum.field(for: sum), toByteOffset: checksumOffset, as: UInt16.self)
        return headerLength &+ chunk
    }

    /// UFO: writes IP fragment `index` of the UDP datagram to `output`, which has room for
    /// `headerLength + 8 + segmentSize` bytes, and returns its length. The first fragment
    /// carries the UDP header with the whole datagram's checksum; IPv4 fragments keep the
    /// datagram's identification, IPv6 ones get a fragment header with `identification`.
    /// A datagram that fits one piece goes out whole, only its checksum completed.
    func writeFragment(_ index: Int, to output: UnsafeMutableRawPointer, identification: UInt32) -> Int {
        let datagramLength = length &- transportOffset
        let start = index &* segmentSize
        let chunk = min(segmentSize, datagramLength &- start)
        let fragmented = segmentCount > 1
        let isLast = index == segmentCount &- 1
        let fragmentHeader = isIPv6 && fragmented ? 8 : 0
        let dataOffset = transportOffset &+ fragmentHeader
        // Unsafe: headers and [transportOffset + start, + chunk) lie inside the frame; the
        // output holds transportOffset + 8 + chunk bytes.
        output.copyMemory(from: frame, byteCount: transportOffset)
        output.advanced(by: dataOffset).copyMemory(from: frame + (transportOffset &+ start), byteCount: chunk)
        if index == 0 {
            // The UDP header is in the first fragment: the datagram's length and checksum.
            Self.storeBigEndian16(output, dataOffset &+ 4, UInt16(truncatingIfNeeded: datagramLength))
            var sum = pseudoHeaderSum(transportLength: datagramLength)
            sum = InternetChecksum.add(frame + transportOffset, count: 4, to: sum)
            sum = InternetChecksum.add(networkOrder: UInt16(truncatingIfNeeded: datagramLength), to: sum)
            sum = InternetChecksum.add(frame + (transportOffset &+ 8), count: datagramLength &- 8, to: sum)
            output.storeBytes(of: InternetChecksum.field(for: sum), toByteOffset: dataOffset &+ 6, as: UInt16.self)
        }
        if isIPv6 {
            let extensions = transportOffset &- networkOffset &- 40
            Self.storeBigEndian16(output, networkOffset &+ 4, UInt16(truncatingIfNeeded: extensions &+ fragmentHeader &+ chunk))
            if fragmented {
                output.storeBytes(of: 44, toByteOffset: nextHeaderOffset, as: UInt8.self)
                output.storeBytes(of: Self.udp, toByteOffset: transportOffset, as: UInt8.self)
                output.storeBytes(of: 0, toByteOffset: transportOffset &+ 1, as: UInt8.self)
                Self.storeBigEndian16(output, transportOffset &+ 2, UInt16(truncatingIfNeeded: start) | (isLast ? 0 : 1))
                output.storeBytes(of: identification.bigEndian, toByteOffset: transportOffset &+ 4, as: UInt32.self)
            }
        } else {
            let ipHeaderLength = transportOffset &- networkOffset
            Self.storeBigEndian16(output, networkOffset &+ 2, UInt16(truncatingIfNeeded: ipHeaderLength &+ chunk))
            if fragmented {
                // Offset in 8-byte units (start is a multiple of 8), more-fragments on all
                // but the last, don't-fragment cleared.
                Self.storeBigEndian16(output, networkOffset &+ 6, UInt16(truncatingIfNeeded: start >> 3) | (isLast ? 0 : 0x2000))
            }
            output.storeBytes(of: 0, toByteOffset: networkOffset &+ 10, as: UInt16.self)
            let sum = InternetChecksum.add(output + networkOffset, count: ipHeaderLength, to: 0)
            output.storeBytes(of: ~InternetChecksum.fold(sum), toByteOffset: networkOffset &+ 10, as: UInt16.self)
        }
        return dataOffset &+ chunk
    }

    /// The TCP/UDP pseudo-header: addresses, protocol and transport length (RFC 793, RFC 8200 8.1).
    private func pseudoHeaderSum(transportLength: Int) -> UInt64 {
        // Unsafe: the addresses lie inside the IP header checked in init.
        var sum: UInt64
        if isIPv6 {
            sum = InternetChecksum.add(frame + (networkOffset &+ 8), count: 32, to: 0)
        } else {
            sum = InternetChecksum.add(frame + (networkOffset &+ 12), count: 8, to: 0)
        }
        sum = InternetChecksum.add(networkOrder: UInt16(transportProtocol), to: sum)
        return InternetChecksum.add(networkOrder: UInt16(truncatingIfNeeded: transportLength), to: sum)
    }

    @inline(__always)
    static func loadBigEndian16(_ bytes: UnsafeRawPointer, _ offset: Int) -> UInt16 {
        // Unsafe: callers check offset + 2 <= length.
        UInt16(bigEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt16.self))
    }

    @inline(__always)
    static func storeBigEndian16(_ bytes: UnsafeMutableRawPointer, _ offset: Int, _ value: UInt16) {
        // Unsafe: callers write inside the segment's copied headers.
        bytes.storeBytes(of: value.bigEndian, toByteOffset: offset, as: UInt16.self)
    }
}
