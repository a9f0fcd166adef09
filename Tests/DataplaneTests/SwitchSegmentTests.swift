import XCTest
import Virtio
@testable import Dataplane

/// Segments (issue 18) on simulated guests: access, trunk (tagged and native) and
/// default-segment ports forward within their segment both ways, with tags pushed and popped
/// byte for byte, and nothing crosses segments: not broadcasts, not unknown unicast, not a
/// MAC learned in another VLAN.
final class SwitchSegmentTests: SimulatedGuestSwitchTestCase {
    static let broadcast: [UInt8] = [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]

    func testAccessPortsOfOneVLANForwardBothWaysAndNothingCrossesToAnother() throws {
        let a = try guest(0xA, name: "a", policy: .access(10)), b = try guest(0xB, name: "b", policy: .access(10))
        let c = try guest(0xC, name: "c", policy: .access(20)), d = try guest(0xD, name: "d")
        let hello = SegmentFrames.untagged(to: Self.broadcast, from: 0xA, payload: 1)
        a.guest.transmit(frames: [hello])
        XCTAssertEqual(b.guest.waitForFrames(1), 1)
        XCTAssertEqual(b.guest.receivedFrames.last, hello, "an access port's frame leaves untagged, as it came")
        // c answers a broadcast of its own in VLAN 20 so its MAC is learned there.
        c.guest.transmit(frames: [SegmentFrames.untagged(to: Self.broadcast, from: 0xC, payload: 2)])
        // b answers a: known unicast within VLAN 10.
        let reply = SegmentFrames.untagged(to: SegmentFrames.mac(0xA), from: 0xB, payload: 3)
        b.guest.transmit(frames: [reply])
        XCTAssertEqual(a.guest.waitForFrames(1), 1)
        XCTAssertEqual(a.guest.receivedFrames.last, reply)
        // a sends to c's MAC: unknown in VLAN 10, so it floods VLAN 10 (b) and never reaches c.
        a.guest.transmit(frames: [SegmentFrames.untagged(to: SegmentFrames.mac(0xC), from: 0xA, payload: 4)])
        XCTAssertEqual(b.guest.waitForFrames(1), 1, "unknown unicast floods its own VLAN")
        XCTAssertEqual(c.guest.waitForFrames(1, timeout: 0.3), 0, "nothing from VLAN 10 reaches VLAN 20")
        XCTAssertEqual(d.guest.waitForFrames(1, timeout: 0.1), 0, "nor the default segment")
        XCTAssertEqual(fabric.fdb.lookup(MacAddress.load(SegmentFrames.mac(0xC)), segment: 20), c.id)
        XCTAssertEqual(fabric.fdb.lookup(MacAddress.load(SegmentFrames.mac(0xC)), segment: 10), -1)
        XCTAssertEqual(fabric.fdb.lookup(MacAddress.load(SegmentFrames.mac(0xA)), segment: 10), a.id)
        XCTAssertEqual(fabric.fdb.lookup(MacAddress.load(SegmentFrames.mac(0xA))), -1, "not in the default segment")
    }

    func testTrunkCarriesItsVLANsTaggedAndTheNativeOneUntagged() throws {
        let trunk = try guest(0x7, name: "trunk", policy: .trunk([10, 20], native: 30))
        let a = try guest(0xA, name: "a", policy: .access(10)), c = try guest(0xC, name: "c", policy: .access(20))
        let n = try guest(0xE, name: "n", policy: .access(30)), d = try guest(0xD, name: "d")
        // Access to trunk: the tag is pushed after the MACs, the rest byte for byte.
        a.guest.transmit(frames: [SegmentFrames.untagged(to: Self.broadcast, from: 0xA, payload: 1)])
        XCTAssertEqual(trunk.guest.waitForFrames(1), 1)
        XCTAssertEqual(trunk.guest.receivedFrames.last, SegmentFrames.tagged(to: Self.broadcast, from: 0xA, vlan: 10, payload: 1))
        XCTAssertEqual(c.guest.waitForFrames(1, timeout: 0.2) + n.guest.waitForFrames(1, timeout: 0.1) + d.guest.waitForFrames(1, timeout: 0.1), 0)
        // Trunk to access: the tag's VLAN picks the segment and the tag comes off.
        trunk.guest.transmit(frames: [SegmentFrames.tagged(to: Self.broadcast, from: 0x7, vlan: 20, payload: 2)])
        XCTAssertEqual(c.guest.waitForFrames(1), 1)
        XCTAssertEqual(c.guest.receivedFrames.last, SegmentFrames.untagged(to: Self.broadcast, from: 0x7, payload: 2))
        XCTAssertEqual(a.guest.waitForFrames(1, timeout: 0.2), 0)
        // Untagged on the trunk is the native VLAN 30, untagged both ways.
        let native = SegmentFrames.untagged(to: Self.broadcast, from: 0x7, payload: 3)
        trunk.guest.transmit(frames: [native])
        XCTAssertEqual(n.guest.waitForFrames(1), 1)
        XCTAssertEqual(n.guest.receivedFrames.last, native)
        n.guest.transmit(frames: [SegmentFrames.untagged(to: SegmentFrames.mac(0x7), from: 0xE, payload: 4)])
        XCTAssertEqual(trunk.guest.waitForFrames(1), 1)
        XCTAssertEqual(trunk.guest.receivedFrames.last, SegmentFrames.untagged(to: SegmentFrames.mac(0x7), from: 0xE, payload: 4))
        // Known unicast from the trunk in VLAN 10 goes to a alone, untagged.
        trunk.guest.transmit(frames: [SegmentFrames.tagged(to: SegmentFrames.mac(0xA), from: 0x7, vlan: 10, payload: 5)])
        XCTAssertEqual(a.guest.waitForFrames(1), 1)
        XCTAssertEqual(a.guest.receivedFrames.last, SegmentFrames.untagged(to: SegmentFrames.mac(0xA), from: 0x7, payload: 5))
        // A VLAN the trunk does not carry is dropped and counted, per port and per VLAN.
        trunk.guest.transmit(frames: [SegmentFrames.tagged(to: Self.broadcast, from: 0x7, vlan: 40, payload: 6)])
        XCTAssertEqual(a.guest.waitForFrames(1, timeout: 0.3) + c.guest.waitForFrames(1, timeout: 0.1) + n.guest.waitForFrames(1, timeout: 0.1)
                       + d.guest.waitForFrames(1, timeout: 0.1), 0)
        XCTAssertEqual(fabric.statistics(portID: trunk.id)[.dropsVLANNotCarried], 1)
        XCTAssertEqual(fabric.segmentStatistics().first { $0.segment == 40 }?.drops[.notCarried], 1)
        XCTAssertEqual(d.guest.received, 0, "the default segment saw nothing of it all")
    }

    /// Trunk tags stay on the frame until a destination wants it untagged: a flood reaches
    /// an access port (tag off for it) and then a second trunk (tag back on, the bytes exact),
    /// and known unicast trunk to trunk leaves as it came.
    func testTrunkFramesKeepTheirTagsPastAnUntaggedDestination() throws {
        let trunk = try guest(0x7, name: "trunk", policy: .trunk([10], native: nil))
        let a = try guest(0xA, name: "a", policy: .access(10))  // before `other` in port order
        let other = try guest(0x8, name: "other", policy: .trunk([10], native: nil))
        let flooded = [SegmentFrames.tagged(to: Self.broadcast, from: 0x7, vlan: 10, payload: 1),
                       SegmentFrames.tagged(to: Self.broadcast, from: 0x7, vlan: 10, payload: 2)]
        trunk.guest.transmit(frames: flooded)
        XCTAssertEqual(a.guest.waitForFrames(2), 2)
        XCTAssertEqual(a.guest.receivedFrames, [SegmentFrames.untagged(to: Self.broadcast, from: 0x7, payload: 1),
                                                SegmentFrames.untagged(to: Self.broadcast, from: 0x7, payload: 2)])
        XCTAssertEqual(other.guest.waitForFrames(2), 2)
        XCTAssertEqual(other.guest.receivedFrames, flooded)
        // other's MAC is learned from a frame of its own; then unicast goes to it alone, tagged as sent.
        other.guest.transmit(frames: [SegmentFrames.tagged(to: SegmentFrames.mac(0x7), from: 0x8, vlan: 10, payload: 3)])
        XCTAssertEqual(trunk.guest.waitForFrames(1), 1)
        let unicast = SegmentFrames.tagged(to: SegmentFrames.mac(0x8), from: 0x7, vlan: 10, payload: 4, length: 1000)
        trunk.guest.transmit(frames: [unicast, unicast])
        XCTAssertEqual(other.guest.waitForFrames(2), 2)
        XCTAssertEqual(Array(other.guest.receivedFrames.suffix(2)), [unicast, unicast])
        XCTAssertEqual(a.guest.waitForFrames(1, timeout: 0.2), 0, "known unicast is not flooded")
    }

    /// One burst from a trunk with frames of three segments: each frame goes to its own
    /// segment's ports, and a second trunk gets each with its own tag.
    func testMixedBurstFromATrunkIsSplitBySegment() throws {
        let trunk = try guest(0x7, name: "trunk", policy: .trunk([10, 20], native: nil))
        let other = try guest(0x8, name: "other", policy: .trunk([10, 20, 30], native: nil))
        let a = try guest(0xA, name: "a", policy: .access(10)), c = try guest(0xC, name: "c", policy: .access(20))
        let frames = [SegmentFrames.tagged(to: Self.broadcast, from: 0x7, vlan: 10, payload: 1),
                      SegmentFrames.tagged(to: Self.broadcast, from: 0x7, vlan: 20, payload: 2),
                      SegmentFrames.untagged(to: Self.broadcast, from: 0x7, payload: 3),
                      SegmentFrames.tagged(to: Self.broadcast, from: 0x7, vlan: 10, payload: 4)]
        trunk.guest.transmit(frames: frames)
        XCTAssertEqual(a.guest.waitForFrames(2), 2)
        XCTAssertEqual(a.guest.receivedFrames, [SegmentFrames.untagged(to: Self.broadcast, from: 0x7, payload: 1),
                                                SegmentFrames.untagged(to: Self.broadcast, from: 0x7, payload: 4)])
        XCTAssertEqual(c.guest.waitForFrames(1), 1)
        XCTAssertEqual(c.guest.receivedFrames, [SegmentFrames.untagged(to: Self.broadcast, from: 0x7, payload: 2)])
        XCTAssertEqual(other.guest.waitForFrames(3), 3)
        XCTAssertEqual(other.guest.receivedFrames, [frames[0], frames[1], frames[3]], "trunk to trunk: tags as they came")
        XCTAssertEqual(fabric.statistics(portID: trunk.id)[.dropsVLANNotCarried], 1, "untagged on a trunk without a native VLAN")
    }

    func testAccessPortDropsTaggedFramesButTakesPriorityTags() throws {
        var neighbours = try NeighbourPair(self)  // default segment: keeps forwarding meanwhile
        let a = try guest(0xA, name: "a", policy: .access(10)), b = try guest(0xB, name: "b", policy: .access(10))
        a.guest.transmit(frames: [SegmentFrames.tagged(to: Self.broadcast, from: 0xA, vlan: 10, payload: 1),
                                  SegmentFrames.tagged(to: Self.broadcast, from: 0xA, vlan: 20, payload: 2)])
        neighbours.send()
        XCTAssertEqual(b.guest.waitForFrames(1, timeout: 0.3), 0)
        neighbours.check()
        XCTAssertEqual(fabric.statistics(portID: a.id)[.dropsVLANTaggedOnAccess], 2)
        a.guest.transmit(frames: [SegmentFrames.tagged(to: Self.broadcast, from: 0xA, vlan: 0, payload: 3)])
        XCTAssertEqual(b.guest.waitForFrames(1), 1)
        XCTAssertEqual(b.guest.receivedFrames.last, SegmentFrames.untagged(to: Self.broadcast, from: 0xA, payload: 3),
                       "a priority tag comes off")
        // A tagged runt: too short to take its tag off.
        a.guest.transmit(frames: [Array(SegmentFrames.tagged(to: Self.broadcast, from: 0xA, vlan: 0, payload: 3)[0..<16])])
        XCTAssertEqual(b.guest.waitForFrames(1, timeout: 0.3), 0)
        XCTAssertEqual(fabric.statistics(portID: a.id)[.dropsVLANMalformed], 1)
    }

    func testDefaultSegmentPassesTaggedFramesAsTheyAreToDefaultPortsOnly() throws {
        let d1 = try guest(0x1, name: "d1"), d2 = try guest(0x2, name: "d2"), a = try guest(0xA, name: "a", policy: .access(10))
        let tagged = SegmentFrames.tagged(to: Self.broadcast, from: 0x1, vlan: 10, payload: 1)
        d1.guest.transmit(frames: [tagged])
        XCTAssertEqual(d2.guest.waitForFrames(1), 1)
        XCTAssertEqual(d2.guest.receivedFrames.last, tagged)
        XCTAssertEqual(a.guest.waitForFrames(1, timeout: 0.3), 0)
        a.guest.transmit(frames: [SegmentFrames.untagged(to: Self.broadcast, from: 0xA, payload: 2)])
        XCTAssertEqual(d1.guest.waitForFrames(1, timeout: 0.3) + d2.guest.waitForFrames(1, timeout: 0.1), 0)
    }

    /// The same MAC in two VLANs is two entries, each on its own port.
    func testTheSameMACIsLearnedPerSegment() throws {
        let x = try guest(0x5, name: "x10", policy: .access(10)), y = try guest(0x5, name: "y20", policy: .access(20))
        let a = try guest(0xA, name: "a", policy: .access(10)), c = try guest(0xC, name: "c", policy: .access(20))
        x.guest.transmit(frames: [SegmentFrames.untagged(to: Self.broadcast, from: 0x5, payload: 1)])
        y.guest.transmit(frames: [SegmentFrames.untagged(to: Self.broadcast, from: 0x5, payload: 2)])
        XCTAssertEqual(a.guest.waitForFrames(1) + c.guest.waitForFrames(1), 2)
        let mac = MacAddress.load(SegmentFrames.mac(0x5))
        XCTAssertEqual(fabric.fdb.lookup(mac, segment: 10), x.id)
        XCTAssertEqual(fabric.fdb.lookup(mac, segment: 20), y.id)
        c.guest.transmit(frames: [SegmentFrames.untagged(to: SegmentFrames.mac(0x5), from: 0xC, payload: 3)])
        XCTAssertEqual(y.guest.waitForFrames(1), 1)
        XCTAssertEqual(x.guest.waitForFrames(1, timeout: 0.3), 0)
    }

    /// A port moved to another VLAN by setPolicy: the next burst already follows the new
    /// policy, its rings are untouched (it keeps receiving without any reconnection), and
    /// its MACs learned in the old VLAN are gone.
    func testSetPolicyTakesEffectWithinOneBurstWithoutTouchingTheRings() throws {
        let a = try guest(0xA, name: "a", policy: .access(10)), b = try guest(0xB, name: "b", policy: .access(10))
        let c = try guest(0xC, name: "c", policy: .access(20))
        b.guest.transmit(frames: [SegmentFrames.untagged(to: Self.broadcast, from: 0xB, payload: 1)])
        XCTAssertEqual(a.guest.waitForFrames(1), 1)
        for round in 0..<3 {
            fabric.setPolicy(portID: b.id, .access(20))
            XCTAssertEqual(fabric.fdb.lookup(MacAddress.load(SegmentFrames.mac(0xB)), segment: 10), -1, "old VLAN's entry flushed")
            a.guest.transmit(frames: [SegmentFrames.untagged(to: Self.broadcast, from: 0xA, payload: UInt8(round))])
            c.guest.transmit(frames: [SegmentFrames.untagged(to: Self.broadcast, from: 0xC, payload: UInt8(round))])
            XCTAssertEqual(b.guest.waitForFrames(1), 1)
            XCTAssertEqual(b.guest.receivedFrames.last, SegmentFrames.untagged(to: Self.broadcast, from: 0xC, payload: UInt8(round)),
                           "the first frame after setPolicy returned is from VLAN 20")
            XCTAssertEqual(b.guest.waitForFrames(1, timeout: 0.2), 0, "and nothing from VLAN 10")
            fabric.setPolicy(portID: b.id, .access(10))
            a.guest.transmit(frames: [SegmentFrames.untagged(to: Self.broadcast, from: 0xA, payload: 0x40 | UInt8(round))])
            XCTAssertEqual(b.guest.waitForFrames(1), 1)
            XCTAssertEqual(b.guest.receivedFrames.last, SegmentFrames.untagged(to: Self.broadcast, from: 0xA, payload: 0x40 | UInt8(round)))
        }
    }

    /// A frame with a partial checksum leaves a trunk with csum_start moved past the pushed tag.
    func testOffloadHeaderMovesWithThePushedTag() throws {
        let features = SimulatedGuestPort.features | VirtioNetFeature.csum.mask | VirtioNetFeature.guestCsum.mask
        let a = try SimulatedGuestPort(mac: SegmentFrames.mac(0xA), features: features)
        let trunk = try SimulatedGuestPort(mac: SegmentFrames.mac(0x7), features: features)
        trunk.keepFrames = true
        let idA = try XCTUnwrap(fabric.addPort(name: "a")), idT = try XCTUnwrap(fabric.addPort(name: "t"))
        fabric.setPolicy(portID: idA, .access(10))
        fabric.setPolicy(portID: idT, .trunk([10], native: nil))
        fabric.setQueues(portID: idA, queues: a.activeQueues)
        fabric.setQueues(portID: idT, queues: trunk.activeQueues)
        let frame = SegmentFrames.untagged(to: Self.broadcast, from: 0xA, payload: 9, length: 80)
        let header = VirtioNetHeader(flags: VirtioNetHeader.flagNeedsChecksum, gsoType: 0, headerLength: 0, gsoSize: 0,
                                     checksumStart: 34, checksumOffset: 6)
        a.transmit(frame: frame, header: header)
        XCTAssertEqual(trunk.waitForFrames(1), 1)
        XCTAssertEqual(trunk.receivedFrames.last, SegmentFrames.tagged(to: Self.broadcast, from: 0xA, vlan: 10, payload: 9, length: 80))
        let received = try XCTUnwrap(trunk.receivedHeaders.last)
        XCTAssertEqual(received[0], VirtioNetHeader.flagNeedsChecksum)
        XCTAssertEqual(UInt16(received[6]) | UInt16(received[7]) << 8, 38, "csum_start counts the tag")
        XCTAssertEqual(UInt16(received[8]) | UInt16(received[9]) << 8, 6)
    }
}

extension PortPolicy {
    static func access(_ vlan: UInt16) -> PortPolicy {
        var policy = PortPolicy()
        policy.vlan = vlan
        return policy
    }

    static func trunk(_ vlans: [UInt16], native: UInt16?) -> PortPolicy {
        var policy = PortPolicy()
        policy.trunk = vlans
        policy.vlan = native
        return policy
    }
}

/// Frames for the segment tests, written out byte by byte (not with the switch's code).
enum SegmentFrames {
    static func mac(_ last: UInt8) -> [UInt8] { [2, 0, 0, 0, 0, last] }

    static func untagged(to destination: [UInt8], from source: UInt8, payload: UInt8, length: Int = 64) -> [UInt8] {
        destination + mac(source) + [0x88, 0xB5] + body(payload, count: length - 14)
    }

    /// The same frame with an 802.1Q tag (priority 0) after the MACs: 4 bytes longer.
    static func tagged(to destination: [UInt8], from source: UInt8, vlan: Int, payload: UInt8, length: Int = 64) -> [UInt8] {
        destination + mac(source) + [0x81, 0x00, UInt8(vlan >> 8), UInt8(vlan & 0xFF)] + [0x88, 0xB5]
            + body(payload, count: length - 14)
    }

    static func body(_ seed: UInt8, count: Int) -> [UInt8] {
        (0..<count).map { UInt8(truncatingIfNeeded: Int(seed) &* 31 &+ $0) }
    }
}
