import Glibc
import VhostSystem
import XCTest
@testable import Dataplane

/// The poll thread's longest-iteration statistic counts the thread's own work, not time it
/// spent off its CPU.
final class IterationTimerTests: XCTestCase {
    /// Runs one window whose middle iteration calls `body`; returns whether it counted.
    private func window(_ timer: inout IterationTimer, middle body: (inout IterationTimer) -> Void) -> Bool {
        var grew = false
        for iteration in 0..<IterationTimer.windowIterations {
            if iteration == IterationTimer.windowIterations / 2 { body(&timer) }
            grew = timer.endIteration().longestGrew || grew
        }
        return grew
    }

    private func spin(microseconds: UInt64) {
        let end = MonotonicClock.nanoseconds() + microseconds * 1000
        while MonotonicClock.nanoseconds() < end {}
    }

    func testBusyIterationCountsAndBlockedIterationDoesNot() {
        var timer = IterationTimer()
        // A 2 ms spin is the thread's own work; a window can still lose its CPU on a busy
        // machine, so a few tries are allowed.
        var counted = false
        for _ in 0..<20 where !counted { counted = window(&timer) { _ in spin(microseconds: 2000) } }
        XCTAssertTrue(counted, "no window with a 2 ms busy iteration counted")
        XCTAssertGreaterThanOrEqual(MonotonicClock.nanoseconds(fromCycles: timer.longestCycles), 1_900_000)

        // 20 ms blocked in the kernel (as in a lock or steal time) is not a guest's burst.
        let before = timer.longestCycles
        XCTAssertFalse(window(&timer) { _ in usleep(20_000) })
        XCTAssertEqual(timer.longestCycles, before)
    }

    func testSleepBetweenIterationsIsNotAnIteration() {
        var timer = IterationTimer()
        var counted = false
        for _ in 0..<20 where !counted {
            counted = window(&timer) { timer in
                usleep(20_000)
                timer.resumeAfterSleep()
                spin(microseconds: 500)
            }
        }
        XCTAssertTrue(counted, "an adaptive sleep spoiled every window")
        XCTAssertLessThan(MonotonicClock.nanoseconds(fromCycles: timer.longestCycles), 15_000_000)
    }
}
