import TestSupport
import VhostSystem
import XCTest
@testable import Virtio

final class DirtyLogTests: XCTestCase {
    private static let logging = QueueHarness.modern | VirtioNetFeature.logAll.mask | VirtioNetFeature.mrgRxbuf.mask

    private func makeLog(bytes: Int, guard guardBytes: Int = 0) throws -> (DirtyLog, MemoryMapping) {
        let fd = try MemFD.create(name: "log", size: bytes + 2 * guardBytes)
        let mapping = try MemoryMapping(descriptor: fd, length: bytes + 2 * guardBytes)
        return (try DirtyLog(mapping: mapping, offset: UInt64(guardBytes), size: UInt64(bytes)), mapping)
    }

    private func markedPages(_ log: DirtyLog) -> [UInt64] {
        (0..<log.size * 8).filter { log.isMarked(page: $0) }
    }

    func testMarksEveryPageARangeTouches() throws {
        let (log, _) = try makeLog(bytes: 64)
        log.markGuestPhysical(0x1fff, length: 2)  // pages 1 and 2
        log.markGuestPhysical(0x5000, length: 0x1000)  // page 5 only
        log.markGuestPhysical(0x9000, length: 0)  // nothing
        XCTAssertEqual(markedPages(log), [1, 2, 5])
    }

    func testNeverWritesOutsideItsSize() throws {
        let (log, mapping) = try makeLog(bytes: 2, guard: 64)  // pages 0...15
        log.markGuestPhysical(0xf000, length: 0x10000)  // pages 15 ... 30
        log.markGuestPhysical(UInt64.max - 10, length: 100)  // wraps: clipped, far beyond
        log.markGuestPhysical(1 << 40, length: 1)
        XCTAssertEqual(markedPages(log), [15])
        let bytes = Array(mapping.bytes)
        XCTAssertEqual(Array(bytes[0..<64]), [UInt8](repeating: 0, count: 64))
        XCTAssertEqual(Array(bytes[66...]), [UInt8](repeating: 0, count: 64))
        XCTAssertEqual(bytes[65], 0x80)
    }

    func testRangeOutsideTheMappingIsRejected() throws {
        let fd = try MemFD.create(name: "log", size: 4096)
        let mapping = try MemoryMapping(descriptor: fd, length: 4096)
        XCTAssertThrowsError(try DirtyLog(mapping: mapping, offset: 4000, size: 200)) {
            XCTAssertEqual($0 as? GuestMemoryError, .logOutsideMapping)
        }
        XCTAssertThrowsError(try DirtyLog(mapping: mapping, offset: UInt64.max, size: 2))
        XCTAssertThrowsError(try DirtyLog(mapping: mapping, offset: 0, size: 0))
        XCTAssertNoThrow(try DirtyLog(mapping: mapping, offset: 96, size: 4000))
    }

    func testReceiveLogsExactlyThePagesWrittenAndTheUsedRing() throws {
        let (log, _) = try makeLog(bytes: 64)  // 512 pages = 2 MiB of guest memory
        let h = try QueueHarness(features: Self.logging, dirtyLog: log, logUsedRing: true, ringAddress: 0x3000)
        XCTAssertTrue(h.queue.logsUsedRing)
        // A buffer that straddles the boundary between pages 0x20 and 0x21.
        let head = h.ring.postReceive(buffers: [(address: 0x21000 - 100, length: 1000)])
        // The queue set VRING_USED_F_NO_NOTIFY when it started: that write is logged; posting
        // buffers is the guest's business.
        XCTAssertEqual(markedPages(log), [h.ring.usedAddress >> 12])
        XCTAssertEqual(h.enqueue([QueueHarness.frame(200)]), 1)
        XCTAssertEqual(h.ring.receivedBytes(id: head, length: 12)[10], 1)
        let usedPage = h.ring.usedAddress >> 12
        XCTAssertEqual(Set(markedPages(log)), Set([0x20, 0x21, usedPage]))
    }

    func testReceiveWithinOnePageLogsOnlyThatPage() throws {
        let (log, _) = try makeLog(bytes: 64)
        let h = try QueueHarness(features: Self.logging, dirtyLog: log, logUsedRing: false)
        h.ring.postReceive(buffers: [(address: 0x30000, length: 2048)])
        XCTAssertEqual(h.enqueue([QueueHarness.frame(60)]), 1)
        XCTAssertEqual(markedPages(log), [0x30], "no used-ring logging without VHOST_VRING_F_LOG")
    }

    func testTransmitLogsOnlyTheUsedRing() throws {
        let (log, _) = try makeLog(bytes: 64)
        let h = try QueueHarness(features: Self.logging, dirtyLog: log, logUsedRing: true, ringAddress: 0x7000)
        h.ring.postTransmit(frame: QueueHarness.frame(100), headerSize: 12)
        XCTAssertEqual(h.dequeue().count, 1)
        XCTAssertEqual(markedPages(log), [h.ring.usedAddress >> 12])
    }

    func testUsedRingEntriesAcrossAPageBoundaryAreLogged() throws {
        // 256 entries of 8 bytes: the used ring spans pages; wrap around its end.
        let (log, _) = try makeLog(bytes: 64)
        let h = try QueueHarness(features: Self.logging, size: 256, dirtyLog: log, logUsedRing: true, ringAddress: 0x1000)
        let used = h.ring.usedAddress
        for _ in 0..<3 {
            for _ in 0..<100 { h.ring.postTransmit(frame: QueueHarness.frame(60), headerSize: 12) }
            var received = 0
            while received < 100 { received += h.dequeue().count }
            XCTAssertEqual(received, 100)
        }
        let firstPage = used >> 12
        let lastPage = (used + 4 + 8 * 256 - 1) >> 12
        XCTAssertEqual(Set(markedPages(log)), Set(firstPage...lastPage))
    }

    func testNothingIsLoggedWithoutLogAll() throws {
        let (log, _) = try makeLog(bytes: 64)
        let h = try QueueHarness(features: QueueHarness.modern, dirtyLog: log, logUsedRing: true)
        XCTAssertFalse(h.queue.logsUsedRing)
        h.ring.postReceive(bufferSizes: [2048])
        XCTAssertEqual(h.enqueue([QueueHarness.frame(60)]), 1)
        XCTAssertEqual(markedPages(log), [])
    }
}
