import Synchronization
import XCTest
import Virtio
@testable import Dataplane

/// The switch's forwarding rules on simulated guests: flood unknown, learn, forward known
/// unicast to one port, never hairpin, RARP announcements, and reconfiguration while
/// traffic flows (the stress test runs under the thread and address sanitizers in CI).
final class SwitchForwardingTests: SimulatedGuestSwitchTestCase {
    static let macA: [UInt8] = [2, 0, 0, 0, 0, 0xA]
    static let macB: [UInt8] = [2, 0, 0, 0, 0, 0xB]
    static let macC: [UInt8] = [2, 0, 0, 0, 0, 0xC]
    static let broadcast: [UInt8] = [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]


    func testUnknownUnicastFloodsThenLearnedUnicastGoesToOnePort() throws {
        let a = try SimulatedGuestPort(mac: Self.macA), b = try SimulatedGuestPort(mac: Self.macB), c = try SimulatedGuestPort(mac: Self.macC)
        let idA = try attach(a, name: "a"), idB = try attach(b, name: "b"), _ = try attach(c, name: "c")
        // B is unknown: A's frame floods to B and C.
        a.transmit(to: Self.macB, count: 1)
        XCTAssertEqual(b.waitForFrames(1), 1)
        XCTAssertEqual(c.waitForFrames(1), 1)
        XCTAssertEqual(fabric.fdb.lookup(MacAddress.parse("02:00:00:00:00:0a")!), idA, "A's MAC learned on A")
        // B answers: A is known, so only A gets it, and B is learned.
        b.transmit(to: Self.macA, count: 1)
        XCTAssertEqual(a.waitForFrames(1), 1)
        XCTAssertEqual(c.waitForFrames(1, timeout: 0.3), 0, "known unicast is not flooded")
        XCTAssertEqual(fabric.fdb.lookup(MacAddress.parse("02:00:00:00:00:0b")!), idB)
        // Now A to B goes to B alone.
        a.transmit(to: Self.macB, count: 5)
        XCTAssertEqual(b.waitForFrames(5), 5)
        XCTAssertEqual(c.waitForFrames(1, timeout: 0.3), 0)
        let statistics = fabric.statistics(portID: idA)
        XCTAssertEqual(statistics[.rxPackets], 6)
        XCTAssertEqual(statistics[.size64], 6, "64-byte frames")
    }

    func testBroadcastFloodsToEveryOtherPortAndNeverBack() throws {
        let a = try SimulatedGuestPort(mac: Self.macA), b = try SimulatedGuestPort(mac: Self.macB), c = try SimulatedGuestPort(mac: Self.macC)
        let idA = try attach(a, name: "a"); _ = try attach(b, name: "b"); _ = try attach(c, name: "c")
        a.transmit(to: Self.broadcast, count: 3)
        XCTAssertEqual(b.waitForFrames(3), 3)
        XCTAssertEqual(c.waitForFrames(3), 3)
        XCTAssertEqual(a.waitForFrames(1, timeout: 0.3), 0, "no hairpin")
        XCTAssertEqual(fabric.statistics(portID: idA)[.rxBroadcast], 3)
    }

    func testFrameForAMacLearnedOnItsIngressPortIsDropped() throws {
        let a = try SimulatedGuestPort(mac: Self.macA), b = try SimulatedGuestPort(mac: Self.macB)
        let idA = try attach(a, name: "a"); _ = try attach(b, name: "b")
        a.transmit(to: Self.broadcast, count: 1)  // learns A on port a
        XCTAssertEqual(b.waitForFrames(1), 1)
        a.transmit(to: Self.macA, count: 2)  // to itself
        XCTAssertEqual(b.waitForFrames(1, timeout: 0.3), 0)
        XCTAssertEqual(fabric.statistics(portID: idA)[.dropsHairpin], 2)
    }

    /// The forwarder asks the table again only when a MAC changes within a burst; a frame
    /// that moves a MAC must not leave the next frame with the old answer.
    func testMacMovedInsideABurstIsSeenByTheNextFrameOfThatBurst() throws {
        let a = try SimulatedGuestPort(mac: Self.macA), b = try SimulatedGuestPort(mac: Self.macB)
        let idA = try attach(a, name: "a")
        _ = try attach(b, name: "b")
        b.transmit(to: Self.broadcast, count: 1)  // learns B on port b
        XCTAssertEqual(a.waitForFrames(1), 1)
        let payload = [UInt8](repeating: 0x5A, count: 50)
        // One burst: A to B (forwarded to b), then a frame from B's MAC on port a (B moves
        // to a) to B again: now a hairpin, dropped.
        a.transmit(frames: [Self.macB + Self.macA + [0x88, 0xB5] + payload, Self.macB + Self.macB + [0x88, 0xB5] + payload])
        XCTAssertEqual(b.waitForFrames(1), 1)
        XCTAssertEqual(b.waitForFrames(1, timeout: 0.3), 0, "the second frame is not sent to the MAC's old port")
        XCTAssertEqual(fabric.fdb.lookup(MacAddress.parse("02:00:00:00:00:0b")!), idA)
        XCTAssertEqual(fabric.statistics(portID: idA)[.dropsHairpin], 1)
        XCTAssertEqual(fabric.statistics(portID: idA)[.rxPackets], 2)
    }

    func testMovedMacFollowsAtOnce() throws {
        let a = try SimulatedGuestPort(mac: Self.macA), b = try SimulatedGuestPort(mac: Self.macB)
        let c = try SimulatedGuestPort(mac: Self.macA)  // the same MAC appears behind c (a migrated guest)
        _ = try attach(a, name: "a"); _ = try attach(b, name: "b"); let idC = try attach(c, name: "c")
        a.transmit(to: Self.broadcast, count: 1)
        XCTAssertEqual(b.waitForFrames(1), 1)
        XCTAssertEqual(c.waitForFrames(1), 1)
        c.transmit(to: Self.broadcast, count: 1)
        XCTAssertEqual(b.waitForFrames(1), 1)
        XCTAssertEqual(a.waitForFrames(1), 1, "the broadcast reaches the old place too")
        XCTAssertEqual(fabric.fdb.lookup(MacAddress.parse("02:00:00:00:00:0a")!), idC)
        b.transmit(to: Self.macA, count: 1)
        XCTAssertEqual(c.waitForFrames(1), 1)
        XCTAssertEqual(a.waitForFrames(1, timeout: 0.3), 0)
    }

    func testInjectedRarpFloodsAndMovesTheMac() throws {
        let a = try SimulatedGuestPort(mac: Self.macA), b = try SimulatedGuestPort(mac: Self.macB)
        let idA = try attach(a, name: "a"); _ = try attach(b, name: "b")
        b.keepFrames = true
        fabric.inject(frame: AnnouncementFrame.rarp(mac: [2, 0, 0, 0, 0, 0x77]), fromPort: idA)
        XCTAssertEqual(b.waitForFrames(1), 1)
        let frame = try XCTUnwrap(b.receivedFrames.first)
        XCTAssertEqual(frame.count, 60)
        XCTAssertEqual(Array(frame[0..<6]), Self.broadcast)
        XCTAssertEqual(Array(frame[6..<12]), [2, 0, 0, 0, 0, 0x77])
        XCTAssertEqual(Array(frame[12..<14]), [0x80, 0x35], "RARP ethertype")
        XCTAssertEqual(Array(frame[20..<22]), [0, 3], "reverse request")
        XCTAssertEqual(fabric.fdb.lookup(0x0200_0000_0077), idA)
        XCTAssertEqual(a.waitForFrames(1, timeout: 0.2), 0)
    }

    /// Ports come and go (with their own guest memory, released after removal) while a
    /// steady stream is forwarded between two others: the stream never stops, and nothing
    /// touches a removed port's memory (ASAN/TSAN in CI).
    func testPortsAddedAndRemovedWhileTrafficFlows() throws {
        let a = try SimulatedGuestPort(mac: Self.macA), b = try SimulatedGuestPort(mac: Self.macB)
        _ = try attach(a, name: "a"); _ = try attach(b, name: "b")
        let running = Atomic<Bool>(true)
        let delivered = Atomic<Int>(0)
        let traffic = Thread {
            while running.load(ordering: .relaxed) {
                a.transmit(to: Self.broadcast, count: 32)
                delivered.store(delivered.load(ordering: .relaxed) + b.collect(), ordering: .relaxed)
                usleep(50)
            }
        }
        traffic.start()
        var samples: [Int] = []
        for round in 0..<200 {
            let transient = try SimulatedGuestPort(mac: [2, 0, 0, 1, UInt8(round >> 8), UInt8(round & 0xFF)])
            let id = try attach(transient, name: "t\(round)")
            transient.transmit(to: Self.broadcast, count: 4)
            usleep(200)
            fabric.removePort(id: id)
            if round % 50 == 0 { samples.append(delivered.load(ordering: .relaxed)) }
        }
        usleep(20_000)
        running.store(false, ordering: .relaxed)
        while !traffic.isFinished { usleep(1000) }
        samples.append(delivered.load(ordering: .relaxed))
        print("[stress] 200 ports added and removed; frames delivered at checkpoints: \(samples)")
        XCTAssertGreaterThan(samples.last ?? 0, 1000)
        for (earlier, later) in zip(samples, samples.dropFirst()) {
            XCTAssertGreaterThan(later, earlier, "forwarding between a and b never stalls")
        }
    }
}
