import Synchronization
import Foundation
import XCTest
@testable import Dataplane

final class MacLearningTableTests: XCTestCase {
    let a: UInt64 = 0x02_00_00_00_00_01
    let b: UInt64 = 0x02_00_00_00_00_02

    func testLearnsAndLooksUp() {
        let table = MacLearningTable(capacity: 64)
        XCTAssertEqual(table.lookup(a), -1)
        XCTAssertEqual(table.learn(a, port: 3, now: 10), .learned)
        XCTAssertEqual(table.learn(a, port: 3, now: 11), .unchanged)
        XCTAssertEqual(table.lookup(a), 3)
        XCTAssertEqual(table.lookup(b), -1)
    }

    func testMovedMacIsUpdatedAtOnce() {
        let table = MacLearningTable(capacity: 64)
        table.learn(a, port: 1, now: 0)
        XCTAssertEqual(table.learn(a, port: 2, now: 0), .moved(from: 1))
        XCTAssertEqual(table.lookup(a), 2)
    }

    func testEntriesAgeOut() {
        let table = MacLearningTable(capacity: 64, agingSeconds: 300)
        table.learn(a, port: 1, now: 100)
        table.learn(b, port: 2, now: 350)
        XCTAssertEqual(table.expire(now: 401), 1)
        XCTAssertEqual(table.lookup(a), -1)
        XCTAssertEqual(table.lookup(b), 2)
    }

    func testFullBucketIsReportedNotOverwritten() {
        let table = MacLearningTable(capacity: 8)  // one bucket of 8 slots
        for i in 0..<8 { XCTAssertEqual(table.learn(UInt64(0x0200_0000_0000 + i), port: 1, now: 0), .learned) }
        XCTAssertEqual(table.learn(0x0200_0000_00FF, port: 1, now: 0), .tableFull)
        XCTAssertEqual(table.lookup(0x0200_0000_0000), 1)
    }

    func testFlushByPortAndRemove() {
        let table = MacLearningTable(capacity: 64)
        table.learn(a, port: 1, now: 0)
        table.learn(b, port: 2, now: 0)
        XCTAssertEqual(table.flush(port: 1), 1)
        XCTAssertEqual(table.lookup(a), -1)
        XCTAssertTrue(table.remove(b))
        XCTAssertFalse(table.remove(b))
        XCTAssertTrue(table.entries(now: 0).isEmpty)
    }

    func testMacAddressHelpers() {
        XCTAssertEqual(MacAddress.parse("02:00:00:00:00:01"), a)
        XCTAssertNil(MacAddress.parse("02:00:00:00:00"))
        XCTAssertNil(MacAddress.parse("zz:00:00:00:00:01"))
        XCTAssertEqual(MacAddress.format(0xFF_FF_FF_FF_FF_FF), "ff:ff:ff:ff:ff:ff")
        XCTAssertTrue(MacAddress.isMulticast(0xFF_FF_FF_FF_FF_FF))
        XCTAssertTrue(MacAddress.isMulticast(0x01_00_5E_00_00_01))
        XCTAssertFalse(MacAddress.isMulticast(a))
        let bytes: [UInt8] = [0x02, 0, 0, 0, 0, 1, 0xAA]
        XCTAssertEqual(bytes.withUnsafeBytes { MacAddress.load($0.baseAddress!) }, a)
    }

    func testFullBucketEvictsTheLeastRecentlySeenEntryInsteadOfRefusing() {
        let table = MacLearningTable(capacity: 8)  // one bucket of 8 slots
        for i in 0..<8 { XCTAssertEqual(table.learn(UInt64(0x0200_0000_0000 + i), port: 1, now: UInt32(10 + i)), .learned) }
        table.learn(0x0200_0000_0000, port: 1, now: 20)  // seen again: now 0x...01 is the oldest
        XCTAssertEqual(table.learn(0x0200_0000_00FF, port: 2, now: 21), .evicted(port: 1))
        XCTAssertEqual(table.lookup(0x0200_0000_00FF), 2)
        XCTAssertEqual(table.lookup(0x0200_0000_0001), -1)
        XCTAssertEqual(table.lookup(0x0200_0000_0000), 1)
        XCTAssertEqual(table.learnedCount(port: 1), 7)
        XCTAssertEqual(table.learnedCount(port: 2), 1)
    }

    func testTwoTablesHashDifferently() {
        let first = MacLearningTable(capacity: 8192), second = MacLearningTable(capacity: 8192)
        let keys = (0..<64).map { MacLearningTable.key(UInt64(0x0200_0000_0000 + $0), segment: 0) }
        XCTAssertNotEqual(keys.map(first.bucket(of:)), keys.map(second.bucket(of:)), "the hash is keyed per table")
        // Sequential MACs spread over buckets.
        XCTAssertGreaterThan(Set(keys.map(first.bucket(of:))).count, 48)
    }

    func testSegmentsKeyTheTable() {
        let table = MacLearningTable(capacity: 64)
        XCTAssertEqual(table.learn(a, segment: 10, port: 1, now: 0), .learned)
        XCTAssertEqual(table.learn(a, segment: 20, port: 2, now: 0), .learned)
        XCTAssertEqual(table.lookup(a, segment: 10), 1)
        XCTAssertEqual(table.lookup(a, segment: 20), 2)
        XCTAssertEqual(table.lookup(a), -1)
        XCTAssertTrue(table.remove(a, segment: 10))
        XCTAssertEqual(table.lookup(a, segment: 20), 2)
        XCTAssertEqual(Set(table.entries(now: 0).map(\.segment)), [20])
        table.learn(a, segment: 30, port: 3, now: 0)
        XCTAssertTrue(table.remove(a), "every segment")
        XCTAssertTrue(table.entries(now: 0).isEmpty)
    }

    func testLimitAndCountsFollowLearnMoveAgeAndFlush() {
        let table = MacLearningTable(capacity: 256, agingSeconds: 10)
        for i in 0..<3 { XCTAssertEqual(table.learn(UInt64(0x0200_0000_0100 + i), port: 1, now: 0, limit: 3), .learned) }
        XCTAssertEqual(table.learn(0x0200_0000_0200, port: 1, now: 0, limit: 3), .limitReached)
        XCTAssertEqual(table.lookup(0x0200_0000_0200), -1)
        XCTAssertEqual(table.learnedCount(port: 1), 3)
        // A port at its limit cannot take a MAC over either.
        table.learn(0x0200_0000_0300, port: 2, now: 0)
        XCTAssertEqual(table.learn(0x0200_0000_0300, port: 1, now: 0, limit: 3), .limitReached)
        XCTAssertEqual(table.learn(0x0200_0000_0100, port: 2, now: 5), .moved(from: 1))
        XCTAssertEqual([table.learnedCount(port: 1), table.learnedCount(port: 2)], [2, 2])
        XCTAssertEqual(table.expire(now: 12), 3, "the three entries last seen at 0")
        XCTAssertEqual([table.learnedCount(port: 1), table.learnedCount(port: 2)], [0, 1])
        XCTAssertEqual(table.flush(port: 2), 1)
        XCTAssertEqual(table.learnedCount(port: 2), 0)
    }

    /// Readers racing a writer that keeps replacing one slot between two segments' entries
    /// for the same MAC: a lookup answers the segment's own port or a miss, never the other.
    func testLookupRacingRewritesNeverAnswersAnotherSegmentsPort() {
        let table = MacLearningTable(capacity: 8)
        let stop = Atomic<Bool>(false)
        let a = self.a
        let writer = Thread {
            var now: UInt32 = 1
            while !stop.load(ordering: .relaxed) {
                table.learn(a, segment: 10, port: 1, now: now)
                table.remove(a, segment: 10)
                table.learn(a, segment: 20, port: 2, now: now)
                table.remove(a, segment: 20)
                now &+= 1
            }
        }
        writer.start()
        var seen: Set<Int> = []
        let deadline = Date().addingTimeInterval(0.3)
        while Date() < deadline {
            for _ in 0..<1000 {
                let ten = table.lookup(a, segment: 10), twenty = table.lookup(a, segment: 20)
                XCTAssertTrue(ten == -1 || ten == 1, "segment 10 answered \(ten)")
                XCTAssertTrue(twenty == -1 || twenty == 2, "segment 20 answered \(twenty)")
                seen.insert(ten)
            }
        }
        stop.store(true, ordering: .relaxed)
        while !writer.isFinished { usleep(1000) }
        XCTAssertTrue(seen.contains(1), "the reader saw the entry at least once")
    }
}
