import XCTest
import Virtio
@testable import Dataplane

/// The flow hash that picks a multiqueue guest's receive ring: one flow, one ring (order
/// kept); different flows spread; fields outside the flow key do not matter; short and odd
/// frames are hashed without reading past their length.
final class FlowHashTests: XCTestCase {
    private static let macs: [UInt8] = [2, 0, 0, 0, 0, 0xB, 2, 0, 0, 0, 0, 0xA]

    /// An Ethernet frame (optionally 802.1Q-tagged) with an IPv4 or IPv6 header and the first
    /// bytes of an L4 header (ports), everything else zero.
    private func frame(ipv6: Bool = false, vlan: Bool = false, protocolNumber: UInt8 = 17, sourcePort: UInt16 = 1000,
                       destinationPort: UInt16 = 2000, sourceHost: UInt8 = 1, fragmentOffset: UInt16 = 0,
                       payloadByte: UInt8 = 0, ttl: UInt8 = 64) -> [UInt8] {
        var bytes = Self.macs
        if vlan { bytes += [0x81, 0x00, 0x00, 0x07] }
        if ipv6 {
            bytes += [0x86, 0xDD, 0x60, 0, 0, 0, 0, 8, protocolNumber, ttl]
            bytes += [0xfd] + [UInt8](repeating: 0, count: 14) + [sourceHost]
            bytes += [0xfd] + [UInt8](repeating: 0, count: 14) + [0x99]
        } else {
            bytes += [0x08, 0x00, 0x45, 0, 0, 28, 0, 0, UInt8(fragmentOffset >> 8), UInt8(fragmentOffset & 0xFF), ttl, protocolNumber, 0, 0]
            bytes += [10, 0, 0, sourceHost, 10, 0, 0, 0x99]
        }
        bytes += [UInt8(sourcePort >> 8), UInt8(sourcePort & 0xFF), UInt8(destinationPort >> 8), UInt8(destinationPort & 0xFF)]
        bytes += [0, 8, 0, 0, payloadByte, payloadByte]
        return bytes
    }

    private func hash(_ bytes: [UInt8], length: Int? = nil) -> UInt32 {
        var copy = bytes
        return copy.withUnsafeMutableBytes { raw in
            var buffer = PacketBuffer(data: raw.baseAddress!, capacity: raw.count)
            buffer.length = length ?? raw.count
            return FlowHash.of(buffer)
        }
    }

    func testOneFlowOneHashWhateverElseChanges() {
        for ipv6 in [false, true] {
            for vlan in [false, true] {
                let reference = hash(frame(ipv6: ipv6, vlan: vlan))
                XCTAssertEqual(hash(frame(ipv6: ipv6, vlan: vlan, payloadByte: 0x55, ttl: 3)), reference, "ipv6 \(ipv6) vlan \(vlan)")
            }
        }
    }

    func testPortsAddressesAndProtocolAreInTheKey() {
        for ipv6 in [false, true] {
            let reference = hash(frame(ipv6: ipv6))
            XCTAssertNotEqual(hash(frame(ipv6: ipv6, sourcePort: 1001)), reference, "ipv6 \(ipv6): source port")
            XCTAssertNotEqual(hash(frame(ipv6: ipv6, destinationPort: 2001)), reference, "ipv6 \(ipv6): destination port")
            XCTAssertNotEqual(hash(frame(ipv6: ipv6, sourceHost: 2)), reference, "ipv6 \(ipv6): source address")
            XCTAssertNotEqual(hash(frame(ipv6: ipv6, protocolNumber: 6)), reference, "ipv6 \(ipv6): protocol")
        }
    }

    /// A non-first fragment has no ports: every fragment of a datagram hashes alike, and the
    /// bytes where ports would be are not read (they are payload).
    func testFragmentsHashOnAddressesOnly() {
        let first = hash(frame(sourcePort: 1, fragmentOffset: 0x2000))
        XCTAssertEqual(hash(frame(sourcePort: 7, fragmentOffset: 0x0010)), first)
        XCTAssertEqual(hash(frame(sourcePort: 9, fragmentOffset: 0x2000)), first)
        // Protocols without ports: the same.
        XCTAssertEqual(hash(frame(protocolNumber: 1, sourcePort: 1)), hash(frame(protocolNumber: 1, sourcePort: 2)))
    }

    /// Truncated headers fall back to the MACs; nothing past `length` is read (the bytes
    /// after it differ, the hash does not).
    func testShortFramesHashOnWhatTheyHave() {
        let full = frame()
        var changedTail = full
        for i in 20..<changedTail.count { changedTail[i] ^= 0xFF }
        for length in [14, 20, 33] {
            XCTAssertEqual(hash(full, length: length), hash(changedTail, length: length), "length \(length)")
        }
        XCTAssertEqual(hash(full, length: 14), hash(Self.macs + [0x08, 0x00]), "an IPv4 type with no header: the MACs")
    }

    /// 64 flows over 4 rings: every ring gets some, none more than half.
    func testFlowsSpreadOverRings() {
        var perRing = [Int](repeating: 0, count: 4)
        for flow in 0..<64 {
            perRing[FlowHash.index(hash(frame(sourcePort: UInt16(5000 + flow))), among: 4)] += 1
        }
        XCTAssertTrue(perRing.allSatisfy { $0 > 0 && $0 <= 32 }, "\(perRing)")
        for count in [2, 3, 4, 7, 128] {
            XCTAssertEqual(FlowHash.index(UInt32.max, among: count), count - 1)
            XCTAssertEqual(FlowHash.index(0, among: count), 0)
        }
    }
}
