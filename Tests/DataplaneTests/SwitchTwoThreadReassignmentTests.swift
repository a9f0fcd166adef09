import Synchronization
import XCTest
import Virtio
@testable import Dataplane

/// Two poll threads: rings are dealt round-robin by port id, so adding or removing a port
/// with a lower id moves the others' rings from one thread to the other while they carry
/// traffic. A ring must never be served by both threads at once (the same heads taken
/// twice, the used index raced; the thread sanitizer sees it in CI).
final class SwitchTwoThreadReassignmentTests: SimulatedGuestSwitchTestCase {
    override var pollThreads: Int { 2 }

    func testRingsMovingBetweenThreadsUnderTrafficAreNeverServedTwice() throws {
        let macA: [UInt8] = [2, 0, 0, 0, 0, 0xA], macB: [UInt8] = [2, 0, 0, 0, 0, 0xB]
        var filler = try SimulatedGuestPort(mac: [2, 0, 0, 0, 0, 0xF])
        var fillerID = try attach(filler, name: "filler")
        let a = try SimulatedGuestPort(mac: macA), b = try SimulatedGuestPort(mac: macB)
        _ = try attach(a, name: "a"); _ = try attach(b, name: "b")
        XCTAssertEqual(fillerID, 0, "the filler holds the lowest id, so toggling it moves a's and b's rings")
        // Both MACs learned first, so the traffic below is unicast a <-> b only.
        a.transmit(to: macB, count: 1)
        b.transmit(to: macA, count: 1)
        XCTAssertEqual(b.waitForFrames(1), 1)
        XCTAssertEqual(a.waitForFrames(1), 1)
        let running = Atomic<Bool>(true)
        let sent = Atomic<Int>(0), received = Atomic<Int>(0)
        let traffic = Thread {
            while running.load(ordering: .relaxed) {
                let n = a.transmit(to: macB, count: 16) + b.transmit(to: macA, count: 16)
                sent.add(n, ordering: .relaxed)
                received.add(a.collect() + b.collect(), ordering: .relaxed)
                usleep(20)
            }
        }
        traffic.start()
        for round in 0..<150 {
            fabric.removePort(id: fillerID)
            usleep(100)
            filler = try SimulatedGuestPort(mac: [2, 0, 0, 0, 1, UInt8(round & 0xFF)])
            fillerID = try attach(filler, name: "filler\(round)")
            usleep(100)
        }
        running.store(false, ordering: .relaxed)
        while !traffic.isFinished { usleep(1000) }
        usleep(20_000)
        received.add(a.collect() + b.collect(), ordering: .relaxed)
        let (total, got) = (sent.load(ordering: .relaxed), received.load(ordering: .relaxed))
        print("[two threads] 150 reassignments; frames sent \(total), received \(got)")
        XCTAssertGreaterThan(got, 1000, "traffic flowed")
        XCTAssertLessThanOrEqual(got, total, "no frame delivered twice")
        for guest in [a, b] {
            for active in guest.activeQueues {
                let stats = try XCTUnwrap(active.queue.split).settings.statistics.snapshot()
                XCTAssertEqual(stats.invalidHeads, 0, "no head taken twice")
                XCTAssertEqual(stats.ringErrors, 0)
            }
        }
    }
}
