import TestSupport
import VhostSystem
import XCTest
@testable import Virtio

/// Packed ring event suppression (VIRTIO 1.1 2.8.10) and dirty logging of every write the
/// device makes to guest memory.
final class PackedVirtqueueNotificationTests: XCTestCase {
    private typealias Ring = PackedGuestDriverRing
    private static let eventIndex = PackedQueueHarness.modern | VirtioNetFeature.eventIdx.mask
    private static let logging = PackedQueueHarness.modern | VirtioNetFeature.logAll.mask | VirtioNetFeature.mrgRxbuf.mask

    private func send(_ h: PackedQueueHarness, _ count: Int, file: StaticString = #filePath, line: UInt = #line) {
        for _ in 0..<count { h.ring.postTransmit(frame: QueueHarness.frame(60), headerSize: 12) }
        XCTAssertEqual(h.dequeue().count, count, file: file, line: line)
        XCTAssertEqual(h.ring.takeUsed().count, count, file: file, line: line)
    }

    // MARK: Interrupting the driver

    func testCallIsWrittenOncePerBurstWhenTheDriverEnablesEvents() throws {
        let h = try PackedQueueHarness()
        XCTAssertEqual(h.ring.driverEventFlags, Ring.eventEnable)
        send(h, 3)
        XCTAssertEqual(h.notifications(), 1)
        XCTAssertEqual(h.stats.notificationsSent, 1)
        XCTAssertEqual(h.dequeue().count, 0)
        XCTAssertEqual(h.notifications(), 0, "no used descriptors, no call")
    }

    func testDisableFlagIsRespected() throws {
        let h = try PackedQueueHarness()
        h.ring.driverEventFlags = Ring.eventDisable
        h.ring.postReceive(bufferSizes: [2048])
        XCTAssertEqual(h.enqueue([QueueHarness.frame(60)]), 1)
        XCTAssertEqual(h.notifications(), 0)
        h.ring.driverEventFlags = Ring.eventEnable
        h.ring.postReceive(bufferSizes: [2048])
        XCTAssertEqual(h.enqueue([QueueHarness.frame(60)]), 1)
        XCTAssertEqual(h.notifications(), 1)
    }

    func testDescriptorEventNotifiesOnlyWhenTheUsedPositionPassesIt() throws {
        let h = try PackedQueueHarness(features: Self.eventIndex, size: 8)
        h.ring.driverEventFlags = Ring.eventDescriptor
        h.ring.driverEventOffWrap = PackedVirtqueue.encodeBase(index: 0, wrap: true)
        send(h, 1)  // used 0 -> 1 passes slot 0 of lap "wrap 1"
        XCTAssertEqual(h.notifications(), 1)
        h.ring.driverEventOffWrap = PackedVirtqueue.encodeBase(index: 5, wrap: true)
        send(h, 2)  // 1 -> 3
        XCTAssertEqual(h.notifications(), 0)
        send(h, 2)  // 3 -> 5: not past 5 yet
        XCTAssertEqual(h.notifications(), 0)
        send(h, 1)  // 5 -> 6: passes 5
        XCTAssertEqual(h.notifications(), 1)
        // Across the wrap: ask for slot 1 of the next lap (wrap counter 0).
        h.ring.driverEventOffWrap = PackedVirtqueue.encodeBase(index: 1, wrap: false)
        send(h, 2)  // 6 -> 8 = slot 0, wrap 0
        XCTAssertEqual(h.notifications(), 0)
        XCTAssertFalse(h.queue.usedWrapCounter)
        send(h, 1)  // 0 -> 1
        XCTAssertEqual(h.notifications(), 0, "slot 1 not passed yet")
        send(h, 1)  // 1 -> 2 passes 1
        XCTAssertEqual(h.notifications(), 1)
    }

    func testNeedsEventAcrossTheWrap() {
        // Ring of 8; used moved from slot 6 (wrap 1) to slot 2 (wrap 0) in one burst.
        XCTAssertTrue(PackedVirtqueue.needsEvent(offWrap: 0x8007, oldUsed: 6, newUsed: 2, usedWrap: false, size: 8))
        XCTAssertTrue(PackedVirtqueue.needsEvent(offWrap: 0x0001, oldUsed: 6, newUsed: 2, usedWrap: false, size: 8))
        XCTAssertFalse(PackedVirtqueue.needsEvent(offWrap: 0x0002, oldUsed: 6, newUsed: 2, usedWrap: false, size: 8))
        XCTAssertFalse(PackedVirtqueue.needsEvent(offWrap: 0x8005, oldUsed: 6, newUsed: 2, usedWrap: false, size: 8))
        // A whole lap in one burst (slot 3 wrap 1 -> slot 3 wrap 0) passes every slot of it,
        // but not slot 3 of the new lap, which is not used yet.
        XCTAssertTrue(PackedVirtqueue.needsEvent(offWrap: 0x8003, oldUsed: 3, newUsed: 3, usedWrap: false, size: 8))
        XCTAssertTrue(PackedVirtqueue.needsEvent(offWrap: 0x0002, oldUsed: 3, newUsed: 3, usedWrap: false, size: 8))
        XCTAssertFalse(PackedVirtqueue.needsEvent(offWrap: 0x0003, oldUsed: 3, newUsed: 3, usedWrap: false, size: 8))
    }

    func testDescriptorFlagWithoutEventIndexStillInterrupts() throws {
        let h = try PackedQueueHarness()
        h.ring.driverEventFlags = Ring.eventDescriptor
        h.ring.driverEventOffWrap = 0x7fff
        send(h, 1)
        XCTAssertEqual(h.notifications(), 1)
    }

    func testNoCallWithoutCallDescriptor() throws {
        let fixture = try GuestMemoryFixture()
        let ring = try Ring(fixture: fixture, size: 8)
        let statistics = VirtqueueStatistics()
        let queue = PackedVirtqueue(layout: try ring.layout(),
                                    settings: NegotiatedRingSettings(memory: fixture.memory, negotiatedFeatures: PackedQueueHarness.modern,
                                                                     statistics: statistics),
                                    lastAvailIndex: 0)
        ring.postTransmit(frame: QueueHarness.frame(60), headerSize: 12)
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: 2048, alignment: 16)
        defer { buffer.deallocate() }
        var packet = PacketBuffer(data: buffer, capacity: 2048)
        XCTAssertEqual(queue.dequeueBurst(into: &packet, maxCount: 1), 1)
        XCTAssertEqual(statistics.snapshot().notificationsSent, 0)
    }

    // MARK: Asking the driver to kick

    func testDeviceEventAreaWhilePollingAndWhenAsleep() throws {
        let h = try PackedQueueHarness()
        XCTAssertEqual(h.ring.deviceEventFlags, Ring.eventDisable, "a new queue polls: no kicks")
        h.queue.setGuestNotifications(enabled: true)
        XCTAssertEqual(h.ring.deviceEventFlags, Ring.eventEnable)
        h.queue.setGuestNotifications(enabled: false)
        XCTAssertEqual(h.ring.deviceEventFlags, Ring.eventDisable)
    }

    func testEventIndexEnablingPublishesTheNextAvailPosition() throws {
        let h = try PackedQueueHarness(features: Self.eventIndex, size: 4)
        send(h, 3)
        h.queue.setGuestNotifications(enabled: true)
        XCTAssertEqual(h.ring.deviceEventFlags, Ring.eventDescriptor)
        XCTAssertEqual(h.ring.deviceEventOffWrap, PackedVirtqueue.encodeBase(index: 3, wrap: true))
        send(h, 2)  // position 3 -> 1 of the next lap
        XCTAssertEqual(h.ring.deviceEventOffWrap, PackedVirtqueue.encodeBase(index: 1, wrap: false), "moves on while enabled")
        XCTAssertTrue(h.queue.hasAvailableBuffers() == false)
        h.ring.postTransmit(frame: QueueHarness.frame(60), headerSize: 12)
        XCTAssertTrue(h.queue.hasAvailableBuffers())
    }

    // MARK: Dirty logging

    private func makeLog(bytes: Int) throws -> DirtyLog {
        let fd = try MemFD.create(name: "log", size: bytes)
        let mapping = try MemoryMapping(descriptor: fd, length: bytes)
        return try DirtyLog(mapping: mapping, offset: 0, size: UInt64(bytes))
    }

    private func markedPages(_ log: DirtyLog) -> Set<UInt64> {
        Set((0..<log.size * 8).filter { log.isMarked(page: $0) })
    }

    func testReceiveLogsDataPagesUsedDescriptorsAndTheDeviceEventArea() throws {
        let log = try makeLog(bytes: 64)
        // 256 slots of 16 bytes: the descriptor ring spans pages 3 and 4; the event areas are on page 4.
        let h = try PackedQueueHarness(features: Self.logging, size: 256, dirtyLog: log, logRing: true, ringAddress: 0x3000)
        XCTAssertTrue(h.queue.logsUsedRing)
        XCTAssertEqual(markedPages(log), [h.ring.deviceEventAddress >> 12], "the DISABLE flag written at start")
        let id = h.ring.postReceive(bufferSizes: [1000])
        let buffer = h.ring.receiveBuffers[id]![0].address
        XCTAssertEqual(h.enqueue([QueueHarness.frame(200)]), 1)
        XCTAssertEqual(markedPages(log), [buffer >> 12, 0x3, h.ring.deviceEventAddress >> 12])
    }

    func testUsedDescriptorsOnEveryPageOfTheRingAreLogged() throws {
        let log = try makeLog(bytes: 64)
        let h = try PackedQueueHarness(features: Self.logging, size: 512, dirtyLog: log, logRing: true, ringAddress: 0x1000,
                                       dataAddress: 0x40000)
        for _ in 0..<3 {
            for _ in 0..<200 { h.ring.postTransmit(frame: QueueHarness.frame(60), headerSize: 12) }
            var received = 0
            while received < 200 { received += h.dequeue().count }
        }
        // 512 * 16 bytes = pages 1 and 2 of descriptors; the device event area on page 3.
        XCTAssertEqual(markedPages(log), [1, 2, 3])
    }

    func testNothingIsLoggedWithoutLogAll() throws {
        let log = try makeLog(bytes: 64)
        let h = try PackedQueueHarness(dirtyLog: log, logRing: true)
        XCTAssertFalse(h.queue.logsUsedRing)
        h.ring.postReceive(bufferSizes: [2048])
        XCTAssertEqual(h.enqueue([QueueHarness.frame(60)]), 1)
        XCTAssertEqual(markedPages(log), [])
    }

    func testDataIsLoggedButNotTheRingWithoutRingLogging() throws {
        let log = try makeLog(bytes: 64)
        let h = try PackedQueueHarness(features: Self.logging, dirtyLog: log, logRing: false)
        XCTAssertFalse(h.queue.logsUsedRing)
        let id = h.ring.postReceive(bufferSizes: [2048])
        XCTAssertEqual(h.enqueue([QueueHarness.frame(60)]), 1)
        XCTAssertEqual(markedPages(log), [h.ring.receiveBuffers[id]![0].address >> 12])
    }
}
