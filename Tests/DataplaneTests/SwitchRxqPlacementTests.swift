import XCTest
import Virtio
@testable import Dataplane

/// Two poll threads: a port's `rxq_affinity` pins its receive queue to a thread, live (a
/// policy change), and automatic balancing moves unpinned queues by their measured load.
final class SwitchRxqPlacementTests: SimulatedGuestSwitchTestCase {
    override var pollThreads: Int { 2 }
    override var rxqRebalanceIntervalSeconds: Int { name.contains("Balancing") ? 1 : 0 }

    private func placement(_ port: String) -> Switch.QueueAssignment? {
        fabric.queueAssignments.first { $0.portName == port && $0.vringIndex == 1 }
    }

    func testAffinityPinsAQueueLiveAndClearingItPlacesItAgain() throws {
        let (a, aID) = try guest(0xA, name: "a")
        let (b, _) = try guest(0xB, name: "b")
        let (_, _) = try guest(0xC, name: "c")
        // Round-robin: a on 0, b on 1, c on 0.
        XCTAssertEqual(placement("a"), Switch.QueueAssignment(portName: "a", vringIndex: 1, pollThread: 0))
        var policy = PortPolicy()
        policy.rxqAffinity = [0: 1]
        fabric.setPolicy(portID: aID, policy)
        XCTAssertEqual(placement("a"), Switch.QueueAssignment(portName: "a", vringIndex: 1, pollThread: 1, pinned: true))
        // The pinned queue is served there: a's frames reach b.
        XCTAssertEqual(a.transmit(to: [2, 0, 0, 0, 0, 0xB], count: 4), 4)
        XCTAssertEqual(b.waitForFrames(4), 4)
        fabric.setPolicy(portID: aID, PortPolicy())
        XCTAssertEqual(placement("a"), Switch.QueueAssignment(portName: "a", vringIndex: 1, pollThread: 0))
    }

    /// a and c start on thread 0 and both send; b (thread 1) only receives. Within a few
    /// housekeeping rounds (interval 1 s) one of the two busy queues moves to thread 1.
    func testBalancingSpreadsTheBusyQueues() throws {
        let (a, _) = try guest(0xA, name: "a")
        let (b, _) = try guest(0xB, name: "b")
        let (c, _) = try guest(0xC, name: "c")
        b.keepFrames = false
        XCTAssertEqual(placement("a")?.pollThread, 0)
        XCTAssertEqual(placement("c")?.pollThread, 0)
        let deadline = Date().addingTimeInterval(8)
        while Date() < deadline && placement("a")?.pollThread == placement("c")?.pollThread {
            _ = a.transmit(to: [2, 0, 0, 0, 0, 0xB], count: 32)
            _ = c.transmit(to: [2, 0, 0, 0, 0, 0xB], count: 32)
            _ = b.collect()
            usleep(200)
        }
        XCTAssertNotEqual(placement("a")?.pollThread, placement("c")?.pollThread, "\(fabric.queueAssignments)")
        XCTAssertEqual(placement("a")?.pinned, false)
        // Still forwarding after the move.
        _ = b.collect()
        XCTAssertEqual(a.transmit(to: [2, 0, 0, 0, 0, 0xB], count: 4), 4)
        XCTAssertGreaterThanOrEqual(b.waitForFrames(4), 4)
    }
}
