import Synchronization
import TestSupport
import Virtio
import XCTest
@testable import Dataplane

/// The kernel-socket and switch counter families: tables, storage and snapshots agree.
final class CounterTableTests: XCTestCase {
    func testKernelTableHasEverySnapshotFieldOnce() {
        XCTAssertEqual(CounterTableChecks.problems(PacketSocketPortStatistics.Snapshot.self), [])
    }

    /// `snapshot` reads each atomic into the field of the same name.
    func testKernelSnapshotReadsEachAtomic() {
        let statistics = PacketSocketPortStatistics()
        let stores: [(name: String, store: (UInt64) -> Void)] = [
            ("receivedPackets", { statistics.receivedPackets.store($0, ordering: .relaxed) }),
            ("receivedBytes", { statistics.receivedBytes.store($0, ordering: .relaxed) }),
            ("receiveDropsTooLarge", { statistics.receiveDropsTooLarge.store($0, ordering: .relaxed) }),
            ("receiveDropsTruncated", { statistics.receiveDropsTruncated.store($0, ordering: .relaxed) }),
            ("receiveDropsMalformed", { statistics.receiveDropsMalformed.store($0, ordering: .relaxed) }),
            ("receivedChecksumPending", { statistics.receivedChecksumPending.store($0, ordering: .relaxed) }),
            ("transmittedPackets", { statistics.transmittedPackets.store($0, ordering: .relaxed) }),
            ("transmittedBytes", { statistics.transmittedBytes.store($0, ordering: .relaxed) }),
            ("transmitDropsTooLarge", { statistics.transmitDropsTooLarge.store($0, ordering: .relaxed) }),
            ("transmitDropsTooShort", { statistics.transmitDropsTooShort.store($0, ordering: .relaxed) }),
            ("transmitDropsUnsupportedOffload", { statistics.transmitDropsUnsupportedOffload.store($0, ordering: .relaxed) }),
            ("transmitDropsRingFull", { statistics.transmitDropsRingFull.store($0, ordering: .relaxed) }),
            ("transmitDropsKernel", { statistics.transmitDropsKernel.store($0, ordering: .relaxed) }),
            ("transmitSendErrors", { statistics.transmitSendErrors.store($0, ordering: .relaxed) }),
            ("receiveRingDrops", { statistics.receiveRingDrops.store($0, ordering: .relaxed) }),
            ("receiveRingFreezes", { statistics.receiveRingFreezes.store($0, ordering: .relaxed) }),
        ]
        for (index, entry) in stores.enumerated() { entry.store(UInt64(index + 1)) }
        let snapshot = CounterTableChecks.storedCounters(statistics.snapshot())
        XCTAssertEqual(snapshot.map(\.name).sorted(), stores.map(\.name).sorted(), "every atomic stored here, every field read")
        for (index, entry) in stores.enumerated() {
            XCTAssertEqual(snapshot.first { $0.name == entry.name }?.value, UInt64(index + 1), entry.name)
        }
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
        XCTAssertGreaterThanOrEqual(PortCounters.stride, PortSwitchCounter.allCases.count)
        // Every switch counter has a field in the API's contract.
        XCTAssertEqual(PortSwitchStatistics.counters.filter { $0.jsonPath == nil }.map(\.help), [])
    }

    /// The per-thread blocks are summed counter by counter, for the port asked about only.
    func testSwitchStatisticsSumEachCounterOverThreads() {
        let first = PortCounters(maxPorts: 2), second = PortCounters(maxPorts: 2)
        for counter in PortSwitchCounter.allCases {
            first.add(counter, port: 1, UInt64(counter.rawValue + 1))
            second.add(counter, port: 1, 100)
        }
        let port1 = PortSwitchStatistics(summing: [first, second], port: 1)
        for (counter, row) in zip(PortSwitchCounter.allCases, PortSwitchStatistics.counters) {
            XCTAssertEqual(port1[counter], UInt64(counter.rawValue + 101), "\(counter)")
            XCTAssertEqual(port1[keyPath: row.field], UInt64(counter.rawValue + 101), "row of \(counter)")
        }
        XCTAssertEqual(PortSwitchStatistics(summing: [first, second], port: 0), PortSwitchStatistics())
    }

    func testSegmentTableHasEveryCounterOnce() {
        XCTAssertEqual(CounterTableChecks.problems(SegmentDropStatistics.self), [])
        XCTAssertEqual(SegmentDropStatistics.counters.count, SegmentDropCounter.allCases.count)
        XCTAssertGreaterThanOrEqual(SegmentCounters.stride, SegmentDropCounter.allCases.count)
        let counters = SegmentCounters()
        counters.add(.spoofed, segment: 4094, 2)
        counters.add(.notCarried, segment: 0, 1)
        XCTAssertEqual(counters.value(.spoofed, segment: 4094), 2)
        XCTAssertEqual(counters.value(.notCarried, segment: 0), 1)
        XCTAssertEqual(counters.value(.spoofed, segment: 0), 0)
    }
}
