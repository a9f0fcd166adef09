import ManagementPlane
import PortService
import Synchronization
import XCTest

/// WATCHDOG=1 goes out only while the control loop and the poll threads make progress, as
/// `ReadinessMonitor` judges it: a fake progress source and a fake clock drive it.
final class ServiceWatchdogTests: XCTestCase {
    final class FakeProgress: @unchecked Sendable {
        var now: UInt64 = 1_000_000_000
        var control: UInt64 = 0
        var pmd: UInt64 = 0
        var pings = 0
        var counters: [ProgressCounter] { [ProgressCounter(name: "control-loop", value: control), ProgressCounter(name: "pmd0", value: pmd)] }
    }

    func testPingsStopWhenAThreadStopsMovingAndResumeWhenItMovesAgain() {
        let fake = FakeProgress()
        let monitor = ReadinessMonitor(stallSeconds: 5, clock: { fake.now })
        let watchdog = ServiceWatchdog(watchdogMicroseconds: 4_000_000, monitor: monitor,
                                       progress: { fake.counters }, ping: { fake.pings += 1 })
        // Both threads move: a ping every look.
        for _ in 0..<4 {
            fake.control += 1
            fake.pmd += 100
            XCTAssertTrue(watchdog.tick())
            fake.now += 2_000_000_000
        }
        XCTAssertEqual(fake.pings, 4)
        // The poll thread stops; the control loop goes on. Pings go on until the stall
        // threshold, then stop (systemd restarts the daemon one WatchdogSec later).
        var pingedWhileStuck = 0
        for _ in 0..<6 {
            fake.control += 1
            if watchdog.tick() { pingedWhileStuck += 1 }
            fake.now += 2_000_000_000
        }
        XCTAssertEqual(pingedWhileStuck, 2, "pings while the stall is under 5 s (2 s and 4 s), none after")
        XCTAssertEqual(fake.pings, 6)
        // The control loop stuck too: still nothing.
        XCTAssertFalse(watchdog.tick())
        // Moving again: pings resume.
        fake.pmd += 1
        fake.control += 1
        XCTAssertTrue(watchdog.tick())
        XCTAssertEqual(fake.pings, 7)
    }

    /// The thread pings every half interval and stops when told.
    func testThreadPingsAtHalfTheIntervalUntilStopped() throws {
        let pings = Atomic<Int>(0)
        let moving = Atomic<UInt64>(0)
        let watchdog = ServiceWatchdog(watchdogMicroseconds: 100_000, monitor: ReadinessMonitor(stallSeconds: 5),
                                       progress: { [ProgressCounter(name: "pmd0", value: moving.add(1, ordering: .relaxed).newValue)] },
                                       ping: { pings.add(1, ordering: .relaxed) })
        try watchdog.start()
        Thread.sleep(forTimeInterval: 0.5)
        watchdog.stop()
        let sent = pings.load(ordering: .relaxed)
        // 50 ms period over 0.5 s: about 10 (the machine may be loaded: a wide band).
        XCTAssertGreaterThanOrEqual(sent, 4)
        XCTAssertLessThanOrEqual(sent, 12)
        Thread.sleep(forTimeInterval: 0.2)
        XCTAssertEqual(pings.load(ordering: .relaxed), sent, "no ping after stop")
    }
}
