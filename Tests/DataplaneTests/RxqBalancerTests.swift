import XCTest
@testable import Dataplane

/// The assignment of receive queues to poll threads by measured load (`RxqBalancer`).
final class RxqBalancerTests: XCTestCase {
    private func queues(_ loads: [UInt64], pinned: [Int: Int] = [:]) -> [RxqBalancer.Queue] {
        loads.enumerated().map { RxqBalancer.Queue(load: $1, pinnedThread: pinned[$0]) }
    }

    func testBusiestQueuesGoFirstToTheLeastLoadedThread() {
        // 90 -> t0, 60 -> t1, 50 -> t1 (60 < 90), 40 -> t0 (110 < 130)... loads 130/110.
        XCTAssertEqual(RxqBalancer.assign(queues([50, 90, 40, 60]), threads: 2), [1, 0, 0, 1])
        XCTAssertEqual(RxqBalancer.busiestLoad(queues([50, 90, 40, 60]), [1, 0, 0, 1], threads: 2), 130)
        // Equal loads: queue order, lower thread first.
        XCTAssertEqual(RxqBalancer.assign(queues([10, 10, 10, 10]), threads: 2), [0, 1, 0, 1])
        XCTAssertEqual(RxqBalancer.assign(queues([0, 0, 0]), threads: 3), [0, 1, 2])
        XCTAssertEqual(RxqBalancer.assign(queues([5, 7]), threads: 1), [0, 0])
    }

    func testPinnedQueuesStayAndCountTowardsTheirThread() {
        // Queue 0 (100) pinned to thread 1: the others avoid thread 1.
        XCTAssertEqual(RxqBalancer.assign(queues([100, 30, 20], pinned: [0: 1]), threads: 2), [1, 0, 0])
        // A pin to a thread that does not exist is no pin.
        XCTAssertEqual(RxqBalancer.assign(queues([100, 30], pinned: [0: 5]), threads: 2), [0, 1])
    }

    func testRebalancesOnlyWhenTheBusiestThreadGainsEnough() {
        let loads = queues([100, 0, 100])
        // Both busy queues on thread 0: moving one halves the busiest load.
        XCTAssertEqual(RxqBalancer.rebalanced(loads, current: [0, 1, 0], threads: 2, improvement: 0.25), [0, 0, 1])
        // Already balanced: nothing to do.
        XCTAssertNil(RxqBalancer.rebalanced(loads, current: [0, 0, 1], threads: 2, improvement: 0.25))
        // 100+90 | 80+30 -> 100+30 | 90+80: the busiest thread 190 -> 170 (10.5%) passes a
        // 10% threshold, not a 25% one.
        let uneven = queues([100, 90, 80, 30])
        XCTAssertEqual(RxqBalancer.rebalanced(uneven, current: [0, 0, 1, 1], threads: 2, improvement: 0.1), [0, 1, 1, 0])
        XCTAssertNil(RxqBalancer.rebalanced(uneven, current: [0, 0, 1, 1], threads: 2, improvement: 0.25))
        // Idle: no load, no move; one thread: nothing to balance.
        XCTAssertNil(RxqBalancer.rebalanced(queues([0, 0, 0]), current: [0, 0, 0], threads: 2, improvement: 0.25))
        XCTAssertNil(RxqBalancer.rebalanced(loads, current: [0, 0, 0], threads: 1, improvement: 0.25))
    }
}
