import TestSupport
import Virtio
import XCTest
@testable import Dataplane
@testable import VhostSystem

/// The kernel-socket and switch counter families: tables, storage and snapshots agree.
final class CounterTableTests: XCTestCase {
    func testKernelTableHasEverySnapshotFieldOnce() {
        XCTAssertEqual(CounterTableChecks.problems(PacketSocketPortStatistics.Snapshot.self), [])
    }

    /// The writers (receive and its busy cycles, transmit, kernel; each written out field by field) add
    /// into the field of the same name, and `snapshot` reads every row.
    func testKernelRecordAndSnapshotAgreeFieldByField() {
        let statistics = PacketSocketPortStatistics()
        let expected: [String: UInt64] = [
            "receivedPackets": 1, "receivedBytes": 2, "receiveDropsTooLarge": 3, "receiveDropsTruncated": 4,
            "receiveDropsMalformed": 5, "receivedChecksumPending": 6,
            "transmittedPackets": 7, "transmittedBytes": 8, "transmitDropsTooLarge": 9, "transmitDropsTooShort": 10,
            "transmitDropsUnsupportedOffload": 11, "transmitDropsRingFull": 12, "transmitDropsKernel": 13, "transmitSendErrors": 14,
            "receiveRingDrops": 15, "receiveRingFreezes": 16, "receiveBusyCycles": 17,
        ]
        for _ in 0..<2 {
            var burst = KernelPortBurstCounters()
            burst.receivedPackets = 1
            burst.receivedBytes = 2
            burst.receiveDropsTooLarge = 3
            burst.receiveDropsTruncated = 4
            burst.receiveDropsMalformed = 5
            burst.receivedChecksumPending = 6
            burst.transmittedPackets = 7
            burst.transmittedBytes = 8
            burst.transmitDropsTooLarge = 9
            burst.transmitDropsTooShort = 10
            burst.transmitDropsUnsupportedOffload = 11
            burst.transmitDropsRingFull = 12
            burst.transmitDropsKernel = 13
            burst.transmitSendErrors = 14
            statistics.recordReceived(burst)
            statistics.recordTransmitted(burst)
            statistics.record(PacketSocket.KernelStatistics(packets: 100, drops: 15, freezes: 16))
            statistics.recordBusyCycles(17)
        }
        let snapshot = CounterTableChecks.storedCounters(statistics.snapshot())
        XCTAssertEqual(snapshot.map(\.name).sorted(), expected.keys.sorted(), "every field written here, every field read")
        for (name, value) in snapshot { XCTAssertEqual(value, expected[name].map { $0 * 2 }, name) }
    }

    func testKernelDropTotalsAreTheDropRowsOfEachDirection() {
        var snapshot = PacketSocketPortStatistics.Snapshot()
        snapshot.receivedPackets = 1000
        snapshot.receiveDropsTooLarge = 1
        snapshot.receiveDropsTruncated = 2
        snapshot.receiveDropsMalformed = 4
        snapshot.receiveRingDrops = 8
        snapshot.receiveRingFreezes = 500
        snapshot.transmitDropsTooLarge = 16
        snapshot.transmitDropsTooShort = 32
        snapshot.transmitDropsUnsupportedOffload = 64
        snapshot.transmitDropsRingFull = 128
        snapshot.transmitDropsKernel = 256
        snapshot.transmitSendErrors = 700
        XCTAssertEqual(snapshot.receiveDrops, 15)
        XCTAssertEqual(snapshot.transmitDrops, 496)
    }

    func testSwitchTableHasEveryCounterOnce() {
        XCTAssertEqual(CounterTableChecks.problems(PortSwitchStatistics.self), [])
        XCTAssertEqual(PortSwitchStatistics.counters.count, PortSwitchCounter.allCases.count)
        XCTAssertGreaterThanOrEqual(PortCounters(rows: 1).stride, PortSwitchCounter.allCases.count)
        // Every switch counter has a field in the API's contract.
        XCTAssertEqual(PortSwitchStatistics.counters.filter { $0.jsonPath == nil }.map(\.help), [])
    }

    /// The per-thread blocks are summed counter by counter, for the port asked about only.
    func testSwitchStatisticsSumEachCounterOverThreads() {
        let first = PortCounters(rows: 2), second = PortCounters(rows: 2)
        for counter in PortSwitchCounter.allCases {
            first.add(counter, of: 1, UInt64(counter.rawValue + 1))
            second.add(counter, of: 1, 100)
        }
        let port1 = PortSwitchStatistics(summing: [first, second], of: 1)
        for (counter, row) in zip(PortSwitchCounter.allCases, PortSwitchStatistics.counters) {
            XCTAssertEqual(port1[counter], UInt64(counter.rawValue + 101), "\(counter)")
            XCTAssertEqual(port1[keyPath: row.field], UInt64(counter.rawValue + 101), "row of \(counter)")
        }
        XCTAssertEqual(PortSwitchStatistics(summing: [first, second], of: 0), PortSwitchStatistics())
    }

    func testSegmentTableHasEveryCounterOnce() {
        XCTAssertEqual(CounterTableChecks.problems(SegmentDropStatistics.self), [])
        XCTAssertEqual(SegmentDropStatistics.counters.count, SegmentDropCounter.allCases.count)
        XCTAssertGreaterThanOrEqual(SegmentCounters().stride, SegmentDropCounter.allCases.count)
        let counters = SegmentCounters()
        counters.add(.spoofed, of: 4094, 2)
        counters.add(.notCarried, of: 0, 1)
        XCTAssertEqual(counters.value(.spoofed, of: 4094), 2)
        XCTAssertEqual(counters.value(.notCarried, of: 0), 1)
        XCTAssertEqual(counters.value(.spoofed, of: 0), 0)
    }
}
