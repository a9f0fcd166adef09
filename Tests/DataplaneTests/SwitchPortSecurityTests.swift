import XCTest
import Virtio
@testable import Dataplane

/// Port security and limits (issue 18) on simulated guests: allowed source MACs (and their
/// live fix), max_macs, the rate limit and storm control, each counted by cause.
final class SwitchPortSecurityTests: SimulatedGuestSwitchTestCase {
    static let broadcast: [UInt8] = [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]


    func testSpoofedFramesAreDroppedBeforeLearningAndComeBackWhenAllowedMACsIsFixedLive() throws {
        var policy = PortPolicy()
        policy.allowedMACs = [MacAddress.load(SegmentFrames.mac(0x99))]
        var neighbours = try NeighbourPair(self)  // first: their learning frame reaches only them
        let a = try guest(0xA, name: "a", policy: policy), b = try guest(0xB, name: "b")
        a.guest.transmit(to: Self.broadcast, count: 5)
        neighbours.send()
        XCTAssertEqual(b.guest.waitForFrames(1, timeout: 0.3), 0)
        neighbours.check()
        XCTAssertEqual(fabric.statistics(portID: a.id)[.dropsSpoofed], 5)
        XCTAssertEqual(fabric.statistics(portID: a.id)[.rxPackets], 5)
        XCTAssertEqual(fabric.fdb.lookup(MacAddress.load(SegmentFrames.mac(0xA))), -1, "a spoofed MAC is never learned")
        XCTAssertEqual(fabric.segmentStatistics().first { $0.segment == 0 }?.drops[.spoofed], 5)
        // Fixed live: the same rings, no reconnection.
        policy.allowedMACs = [MacAddress.load(SegmentFrames.mac(0xA))]
        fabric.setPolicy(portID: a.id, policy)
        a.guest.transmit(to: Self.broadcast, count: 3)
        XCTAssertEqual(b.guest.waitForFrames(3), 3)
        XCTAssertEqual(fabric.statistics(portID: a.id)[.dropsSpoofed], 5)
        XCTAssertEqual(fabric.fdb.lookup(MacAddress.load(SegmentFrames.mac(0xA))), a.id)
    }

    /// A MAC another port already uses cannot be taken over by a port allowed only its own.
    func testAllowedMACsStopsTheftOfAnotherGuestsMAC() throws {
        var policy = PortPolicy()
        policy.allowedMACs = [MacAddress.load(SegmentFrames.mac(0xA))]
        let a = try guest(0xA, name: "a", policy: policy), b = try guest(0xB, name: "b"), c = try guest(0xC, name: "c")
        b.guest.transmit(to: Self.broadcast, count: 1)
        XCTAssertEqual(c.guest.waitForFrames(1), 1)
        a.guest.transmit(frames: [SegmentFrames.untagged(to: Self.broadcast, from: 0xB, payload: 1)])
        XCTAssertEqual(c.guest.waitForFrames(1, timeout: 0.3), 0)
        XCTAssertEqual(fabric.fdb.lookup(MacAddress.load(SegmentFrames.mac(0xB))), b.id, "b's MAC stays on b")
        XCTAssertEqual(fabric.statistics(portID: a.id)[.dropsSpoofed], 1)
    }

    func testMaxMACsLimitsWhatAPortLearnsButNotWhatItSends() throws {
        var policy = PortPolicy()
        policy.maxMACs = 4
        let a = try guest(0xA, name: "a", policy: policy), b = try guest(0xB, name: "b")
        let frames = (0..<10).map { SegmentFrames.untagged(to: Self.broadcast, from: UInt8(0x20 + $0), payload: UInt8($0)) }
        a.guest.transmit(frames: frames)
        XCTAssertEqual(b.guest.waitForFrames(10), 10, "frames from unlearned MACs still flow")
        XCTAssertEqual(fabric.fdb.learnedCount(port: a.id), 4)
        XCTAssertEqual(fabric.fdb.entries(now: Switch.currentSecond()).filter { $0.port == a.id }.count, 4)
        XCTAssertEqual(fabric.statistics(portID: a.id)[.macsNotLearnedLimit], 6)
        // A lower limit set live drops what the port learned; it learns again up to the new limit.
        policy.maxMACs = 2
        fabric.setPolicy(portID: a.id, policy)
        XCTAssertEqual(fabric.fdb.learnedCount(port: a.id), 0)
        a.guest.transmit(frames: frames)
        XCTAssertEqual(b.guest.waitForFrames(10), 10)
        XCTAssertEqual(fabric.fdb.learnedCount(port: a.id), 2)
        fabric.removePort(id: a.id)
        XCTAssertEqual(fabric.fdb.learnedCount(port: a.id), 0)
    }

    /// A port sending from many MACs fills its share and no more; another port keeps its
    /// entries, so traffic to it stays unicast instead of flooding.
    func testMACFloodFromOnePortNeitherEvictsOthersNorTurnsTheSwitchIntoAHub() throws {
        let attacker = try guest(0xA, name: "attacker"), b = try guest(0xB, name: "b"), c = try guest(0xC, name: "c")
        b.guest.transmit(to: Self.broadcast, count: 1)
        c.guest.transmit(to: Self.broadcast, count: 1)
        XCTAssertEqual(attacker.guest.waitForFrames(2), 2)
        XCTAssertEqual(b.guest.waitForFrames(1), 1, "c's broadcast")
        for round in 0..<20 {
            let frames = (0..<32).map { i in
                SegmentFrames.mac(0xB) + [0x02, 0x33, 0x44, UInt8(round), UInt8(i), 0x01] + [0x88, 0xB5]
                    + SegmentFrames.body(UInt8(i), count: 50)
            }
            attacker.guest.transmit(frames: frames)
            XCTAssertEqual(b.guest.waitForFrames(32), 32, "round \(round)")
        }
        XCTAssertEqual(fabric.fdb.learnedCount(port: attacker.id), PortPolicy.defaultMaxMACs)
        XCTAssertGreaterThan(fabric.statistics(portID: attacker.id)[.macsNotLearnedLimit], 0)
        _ = c.guest.collect()
        let before = c.guest.received
        b.guest.transmit(to: SegmentFrames.mac(0xC), count: 1)
        XCTAssertEqual(c.guest.waitForFrames(1), 1)
        XCTAssertEqual(attacker.guest.waitForFrames(1, timeout: 0.3), 0, "b to c is still unicast")
        XCTAssertEqual(c.guest.received, before + 1)
    }

    func testRateLimitPolicesFramesFromThePort() throws {
        var policy = PortPolicy()
        policy.rateLimit = .init(pps: 1, burst: 5)
        var neighbours = try NeighbourPair(self)  // first: their learning frame reaches only them
        let a = try guest(0xA, name: "a", policy: policy), b = try guest(0xB, name: "b")
        let start = MonotonicClockForTests.now()
        for _ in 0..<4 {
            a.guest.transmit(to: Self.broadcast, count: 10)
            neighbours.send()
            usleep(20_000)
        }
        let delivered = b.guest.waitForFrames(40, timeout: 0.5)
        neighbours.check()
        // The bucket starts full (5) and earns 1 frame a second (more only if this loaded
        // machine stretched the test past a second).
        let seconds = Int(MonotonicClockForTests.now() - start)
        XCTAssertGreaterThanOrEqual(delivered, 5)
        XCTAssertLessThanOrEqual(delivered, 5 + seconds + 1)
        XCTAssertEqual(fabric.statistics(portID: a.id)[.dropsRateLimited], UInt64(40 - delivered))
        XCTAssertEqual(fabric.statistics(portID: a.id)[.rxPackets], 40)
        // A new policy starts the bucket afresh.
        policy.rateLimit = .init(pps: 1_000_000, burst: 64)
        fabric.setPolicy(portID: a.id, policy)
        a.guest.transmit(to: Self.broadcast, count: 20)
        XCTAssertEqual(b.guest.waitForFrames(20), 20)
    }

    func testStormControlLimitsBroadcastMulticastAndUnknownUnicastPerSecond() throws {
        var policy = PortPolicy()
        policy.stormControl = .init(broadcastPPS: 3, multicastPPS: 2, unknownUnicastPPS: 4)
        var neighbours = try NeighbourPair(self)  // first: their learning frame reaches only them
        let a = try guest(0xA, name: "a", policy: policy), b = try guest(0xB, name: "b")
        b.guest.transmit(to: Self.broadcast, count: 1)  // b is known: unicast to b is not limited
        XCTAssertEqual(a.guest.waitForFrames(1), 1)
        let frames = (0..<10).map { _ in SegmentFrames.untagged(to: Self.broadcast, from: 0xA, payload: 1) }
            + (0..<10).map { _ in SegmentFrames.untagged(to: [0x01, 0x00, 0x5E, 0, 0, 1], from: 0xA, payload: 2) }
            + (0..<10).map { _ in SegmentFrames.untagged(to: SegmentFrames.mac(0x55), from: 0xA, payload: 3) }
            + (0..<10).map { _ in SegmentFrames.untagged(to: SegmentFrames.mac(0xB), from: 0xA, payload: 4) }
        let start = MonotonicClockForTests.now()
        a.guest.transmit(frames: Array(frames[0..<20]))
        neighbours.send()
        a.guest.transmit(frames: Array(frames[20..<40]))
        neighbours.send()
        let delivered = b.guest.waitForFrames(40, timeout: 0.5)
        neighbours.check()
        // Each second the frames span (more than two only on a badly loaded machine) lets each kind through again.
        let windows = Int(MonotonicClockForTests.now() - start) + 2
        let statistics = fabric.statistics(portID: a.id)
        let drops = statistics[.dropsStormBroadcast] + statistics[.dropsStormMulticast] + statistics[.dropsStormUnknownUnicast]
        XCTAssertEqual(UInt64(delivered) + drops, 40)
        // Within one second: 3 + 2 + 4 flooded plus the 10 known unicast.
        XCTAssertTrue((19...(10 + 9 * windows)).contains(delivered), "delivered \(delivered)")
        XCTAssertTrue(((10 - 3 * windows)...7).contains(Int(statistics[.dropsStormBroadcast])), "\(statistics[.dropsStormBroadcast])")
        XCTAssertTrue(((10 - 2 * windows)...8).contains(Int(statistics[.dropsStormMulticast])), "\(statistics[.dropsStormMulticast])")
        XCTAssertTrue(((10 - 4 * windows)...6).contains(Int(statistics[.dropsStormUnknownUnicast])), "\(statistics[.dropsStormUnknownUnicast])")
        XCTAssertEqual(fabric.segmentStatistics().first { $0.segment == 0 }?.drops[.stormBroadcast], statistics[.dropsStormBroadcast])
    }
}
