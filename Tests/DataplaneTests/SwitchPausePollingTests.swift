import XCTest
@testable import Dataplane

/// `Switch.pausePolling` (live hand-over): nothing is forwarded while paused, changes made
/// meanwhile take effect together on `resumePolling`, and frames posted during the pause are
/// forwarded after it (none lost to a port whose rings were not back yet).
final class SwitchPausePollingTests: SimulatedGuestSwitchTestCase {
    func testPausedSwitchForwardsNothingAndResumesEveryPortTogether() throws {
        let a = try SimulatedGuestPort(mac: [2, 0, 0, 0, 0, 0xa])
        let b = try SimulatedGuestPort(mac: [2, 0, 0, 0, 0, 0xb])
        let aID = try attach(a, name: "a")
        let bID = try attach(b, name: "b")
        XCTAssertEqual(a.transmit(to: b.mac, count: 4), 4)
        XCTAssertEqual(b.waitForFrames(4), 4, "forwarding before the pause")

        fabric.pausePolling()
        XCTAssertFalse(fabric.queueAssignments.isEmpty, "the table keeps its assignments")
        XCTAssertEqual(a.transmit(to: b.mac, count: 3), 3)
        XCTAssertEqual(b.waitForFrames(3, timeout: 0.3), 0, "nothing moves while paused")
        // As a hand-over does: both ports' rings withdrawn and brought back while paused.
        fabric.setQueues(portID: aID, queues: [])
        fabric.setQueues(portID: bID, queues: [])
        fabric.setQueues(portID: aID, queues: a.activeQueues)
        XCTAssertEqual(b.waitForFrames(3, timeout: 0.3), 0, "a's rings are not polled before the resume")
        fabric.setQueues(portID: bID, queues: b.activeQueues)
        fabric.resumePolling()
        XCTAssertEqual(b.waitForFrames(3), 3, "the frames posted during the pause, none dropped")
        XCTAssertEqual(fabric.statistics(portID: bID)[.dropsRingNotReady], 0)
    }
}
