import TestSupport
import Virtio
import XCTest

/// The ring counter family: its table, its stored atomics and its snapshot agree.
final class VirtqueueStatisticsTests: XCTestCase {
    func testTableHasEverySnapshotFieldOnce() {
        XCTAssertEqual(CounterTableChecks.problems(VirtqueueStatisticsSnapshot.self), [])
    }

    /// `record` (the hot path, one load and store per counter, written out) adds every
    /// counter of a burst into the same field, and counts the burst; the poll thread's cycles
    /// come through `recordBusyCycles`; `snapshot` reads every row.
    func testRecordAndSnapshotAgreeFieldByField() {
        let notPerBurst: Set<String> = ["bursts", "busyCycles"]
        var burst = VirtqueueBurstCounters()
        for (index, row) in VirtqueueStatisticsSnapshot.counters.enumerated() where row.jsonPath != ["bursts"] && row.jsonPath != ["busy_cycles"] {
            burst[keyPath: row.field] = UInt64(index + 1) * 10
        }
        let recorded = CounterTableChecks.storedCounters(burst).filter { !notPerBurst.contains($0.name) }
        XCTAssertFalse(recorded.contains { $0.value == 0 }, "a burst counter this test does not set: \(recorded)")

        let statistics = VirtqueueStatistics()
        statistics.record(burst)
        statistics.record(burst)
        statistics.recordBusyCycles(700)
        statistics.recordBusyCycles(34)
        let snapshot = CounterTableChecks.storedCounters(statistics.snapshot())
        let byName = Dictionary(uniqueKeysWithValues: snapshot.map { ($0.name, $0.value) })
        for field in recorded { XCTAssertEqual(byName[field.name], field.value * 2, field.name) }
        XCTAssertEqual(byName["bursts"], 2, "record counts each burst once")
        XCTAssertEqual(byName["busyCycles"], 734)
        XCTAssertEqual(snapshot.count, recorded.count + 2, "the snapshot holds the burst's counters, bursts and busy cycles")
    }

    func testDropsAreTheDropRows() {
        var snapshot = VirtqueueStatisticsSnapshot()
        snapshot.packets = 100
        snapshot.dropsNoBuffers = 3
        snapshot.dropsTooShort = 4
        snapshot.invalidHeads = 50
        XCTAssertEqual(snapshot.drops, 7)
        var sum = snapshot
        sum.add(snapshot)
        XCTAssertEqual(sum.packets, 200)
        XCTAssertEqual(sum.drops, 14)
    }

    /// The check itself: a field left out of the table, and two rows on one field, are found.
    func testTableCheckFindsAMissingAndADoubledField() {
        struct Lopsided: CounterSnapshot {
            var sent: UInt64 = 0
            var lost: UInt64 = 0
            var late: UInt64 = 0
            static let counters: [CounterDescriptor<Self>] = [
                .init(\.sent, json: "sent", .frames, "Sent.", metric: .portPackets, .tx),
                .init(\.sent, json: "sent_again", .frames, "Sent again.", metric: .portPackets, .rx),
                .init(\.lost, json: "lost", .frames, "Lost.", metric: .portDrops, .reason("lost")),
            ]
        }
        let problems = CounterTableChecks.problems(Lopsided.self)
        XCTAssertTrue(problems.contains { $0.contains("shares its field") }, "\(problems)")
        XCTAssertTrue(problems.contains { $0.contains("late has no row") }, "\(problems)")
    }
}
