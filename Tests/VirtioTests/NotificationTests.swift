import TestSupport
import XCTest
@testable import Virtio

/// When the device interrupts the guest (call eventfd) and how it asks for kicks.
final class NotificationTests: XCTestCase {
    private static let eventIndex = QueueHarness.modern | VirtioNetFeature.eventIdx.mask

    func testCallIsWrittenOncePerBurstWhenTheGuestAsks() throws {
        let h = try QueueHarness()
        for _ in 0..<3 { h.ring.postTransmit(frame: QueueHarness.frame(60), headerSize: 12) }
        XCTAssertEqual(h.notifications(), 0)
        XCTAssertEqual(h.dequeue().count, 3)
        XCTAssertEqual(h.notifications(), 1)
        XCTAssertEqual(h.stats.notificationsSent, 1)
        XCTAssertEqual(h.dequeue().count, 0)
        XCTAssertEqual(h.notifications(), 0, "no used entries, no call")
    }

    func testNoInterruptFlagIsRespected() throws {
        let h = try QueueHarness()
        h.ring.availFlags = 1  // VRING_AVAIL_F_NO_INTERRUPT
        h.ring.postReceive(bufferSizes: [2048])
        XCTAssertEqual(h.enqueue([QueueHarness.frame(60)]), 1)
        XCTAssertEqual(h.notifications(), 0)
        XCTAssertEqual(h.stats.notificationsSent, 0)
        h.ring.availFlags = 0
        h.ring.postReceive(bufferSizes: [2048])
        XCTAssertEqual(h.enqueue([QueueHarness.frame(60)]), 1)
        XCTAssertEqual(h.notifications(), 1)
    }

    func testEventIndexNotifiesOnlyWhenUsedIndexPassesUsedEvent() throws {
        let h = try QueueHarness(features: Self.eventIndex)
        h.ring.availFlags = 1  // ignored with EVENT_IDX
        func send(_ count: Int) {
            for _ in 0..<count { h.ring.postTransmit(frame: QueueHarness.frame(60), headerSize: 12) }
            XCTAssertEqual(h.dequeue().count, count)
        }
        h.ring.usedEvent = 0
        send(1)  // used 0 -> 1 passes 0
        XCTAssertEqual(h.notifications(), 1)
        h.ring.usedEvent = 5
        send(2)  // 1 -> 3: not yet
        XCTAssertEqual(h.notifications(), 0)
        send(2)  // 3 -> 5: still not (needs to pass 5)
        XCTAssertEqual(h.notifications(), 0)
        send(1)  // 5 -> 6: passes 5
        XCTAssertEqual(h.notifications(), 1)
        send(1)  // 6 -> 7: 5 already passed
        XCTAssertEqual(h.notifications(), 0)
        h.ring.usedEvent = 65535
        XCTAssertTrue(SplitVirtqueue.needsEvent(usedEvent: 65535, newUsed: 1, oldUsed: 65534), "wraps")
        XCTAssertFalse(SplitVirtqueue.needsEvent(usedEvent: 2, newUsed: 2, oldUsed: 1))
        XCTAssertTrue(SplitVirtqueue.needsEvent(usedEvent: 1, newUsed: 2, oldUsed: 1))
    }

    func testNoCallWithoutCallDescriptor() throws {
        let fixture = try GuestMemoryFixture()
        let ring = try SplitGuestDriverRing(fixture: fixture, size: 8)
        let stats = VirtqueueStatistics()
        let queue = SplitVirtqueue(layout: try ring.layout(),
                                   settings: NegotiatedRingSettings(memory: fixture.memory, negotiatedFeatures: QueueHarness.modern,
                                                                    statistics: stats),
                                   lastAvailIndex: 0)
        ring.postTransmit(frame: QueueHarness.frame(60), headerSize: 12)
        let memory = UnsafeMutableRawPointer.allocate(byteCount: 2048, alignment: 16)
        defer { memory.deallocate() }
        var buffer = PacketBuffer(data: memory, capacity: 2048)
        XCTAssertEqual(queue.dequeueBurst(into: &buffer, maxCount: 1), 1)
        XCTAssertEqual(stats.snapshot().notificationsSent, 0)
    }

    func testUsedNoNotifyFlagIsSetWhilePolling() throws {
        let h = try QueueHarness()
        XCTAssertEqual(h.ring.usedFlags, 1, "a new queue polls: VRING_USED_F_NO_NOTIFY from the start")
        h.queue.setGuestNotifications(enabled: true)
        XCTAssertEqual(h.ring.usedFlags, 0)
        h.queue.setGuestNotifications(enabled: false)
        XCTAssertEqual(h.ring.usedFlags, 1, "VRING_USED_F_NO_NOTIFY")
        h.ring.postTransmit(frame: QueueHarness.frame(60), headerSize: 12)
        XCTAssertEqual(h.dequeue().count, 1)
        XCTAssertEqual(h.ring.usedFlags, 1, "stays set while polling")
        h.queue.setGuestNotifications(enabled: true)
        XCTAssertEqual(h.ring.usedFlags, 0)
    }

    func testEventIndexEnablingPublishesAvailEvent() throws {
        let h = try QueueHarness(features: Self.eventIndex)
        h.queue.setGuestNotifications(enabled: false)
        for _ in 0..<3 { h.ring.postTransmit(frame: QueueHarness.frame(60), headerSize: 12) }
        XCTAssertEqual(h.dequeue().count, 3)
        XCTAssertEqual(h.ring.availEvent, 0, "left behind while polling")
        XCTAssertEqual(h.ring.usedFlags, 0, "the flag is not used with EVENT_IDX")
        h.queue.setGuestNotifications(enabled: true)
        XCTAssertEqual(h.ring.availEvent, 3, "kick on the next entry")
        h.ring.postTransmit(frame: QueueHarness.frame(60), headerSize: 12)
        XCTAssertEqual(h.dequeue().count, 1)
        XCTAssertEqual(h.ring.availEvent, 4, "kept current while notifications are on")
    }

    func testHasAvailableBuffersAndIndicesForTheManagementPlane() throws {
        let h = try QueueHarness()
        XCTAssertFalse(h.queue.hasAvailableBuffers())
        h.ring.postTransmit(frame: QueueHarness.frame(60), headerSize: 12)
        XCTAssertTrue(h.queue.hasAvailableBuffers())
        XCTAssertEqual(h.queue.currentAvailIndex(), 1)
        XCTAssertEqual(h.queue.currentUsedIndex(), 0)
        _ = h.dequeue()
        XCTAssertEqual(h.queue.currentUsedIndex(), 1)
        XCTAssertEqual(h.stats.bursts, 1)
    }
}
