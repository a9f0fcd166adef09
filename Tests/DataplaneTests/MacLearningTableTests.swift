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
}
