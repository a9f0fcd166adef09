import Synchronization
import TestSupport
import VhostSystem
import XCTest
@testable import Virtio

/// A hostile guest's rings cost a poll thread bounded work per burst, can never make the
/// device write outside them, and a ring that keeps breaking rules is stopped with the
/// session's fault flag raised (UNTRUSTED-INPUT.md, "work per burst").
final class RingContainmentTests: XCTestCase {
    private static let bigRing = 32768

    /// A split ring of 32768 entries, each a chain of NEXT flags that loops back to itself.
    private func loopingSplitRing(features: UInt64 = QueueHarness.modern) throws -> QueueHarness {
        let h = try QueueHarness(features: features, size: Self.bigRing, fixture: try GuestMemoryFixture(size: 4 << 20),
                                 dataAddress: 0x200000, dataSize: 0x100000)
        let data = h.ring.allocateBuffer(64)
        for i in 0..<Self.bigRing {
            h.ring.writeDescriptor(i, address: data, length: 64, flags: SplitGuestDriverRing.next, next: UInt16(i))
            h.ring.writeAvailSlot(UInt16(i), head: UInt16(i))
        }
        h.ring.setAvailIndex(UInt16(truncatingIfNeeded: Self.bigRing))
        return h
    }

    func testBurstEndsAtTheFirstInvalidChainOfAHugeRing() throws {
        let h = try loopingSplitRing()
        XCTAssertEqual(h.dequeue(), [])
        XCTAssertEqual(h.queue.lastAvailIndex, 1, "one looping chain consumed, then the burst ends")
        XCTAssertEqual(h.stats.dropsMalformedDescriptor, 1)
        XCTAssertFalse(h.queue.isBroken)
    }

    func testARingThatKeepsFailingIsStoppedAndRaisesTheFaultFlag() throws {
        let h = try loopingSplitRing()
        let flag = GuestFaultFlag()
        let queue = SplitVirtqueue(layout: try h.ring.layout(),
                                   settings: NegotiatedRingSettings(memory: h.fixture.memory, negotiatedFeatures: QueueHarness.modern,
                                                                    statistics: h.statistics, faultFlag: flag),
                                   lastAvailIndex: 0)
        var bursts = 0
        while !queue.isBroken && bursts < 1000 {
            _ = queue.dequeueBurst(into: h.buffers, maxCount: 32)
            bursts += 1
        }
        XCTAssertTrue(queue.isBroken)
        XCTAssertEqual(bursts, Int(RingWalkLimits.maxErrorBurstsInARow))
        XCTAssertEqual(flag.raised, .ringStopped)
        XCTAssertEqual(h.stats.ringErrors, 1)
        XCTAssertEqual(queue.dequeueBurst(into: h.buffers, maxCount: 32), 0, "a stopped ring is not walked again")
        XCTAssertEqual(queue.lastAvailIndex, UInt16(RingWalkLimits.maxErrorBurstsInARow))
    }

    func testAGoodBurstEndsAnErrorStreak() throws {
        let h = try QueueHarness()
        for _ in 0..<(RingWalkLimits.maxErrorBurstsInARow - 1) {
            h.ring.publish(head: h.ring.postChain([(1 << 40, 64)], writable: false, indirect: false))
            XCTAssertEqual(h.dequeue(), [])
            _ = h.ring.takeUsedEntries()
        }
        h.ring.postTransmit(frame: QueueHarness.frame(60), headerSize: 12)
        XCTAssertEqual(h.dequeue().count, 1)
        _ = h.ring.takeUsedEntries()
        h.ring.publish(head: h.ring.postChain([(1 << 40, 64)], writable: false, indirect: false))
        XCTAssertEqual(h.dequeue(), [])
        XCTAssertFalse(h.queue.isBroken, "the streak started again after a good burst")
    }

    func testChainsLongerThanTheChainLimitAreInvalid() throws {
        let h = try QueueHarness(size: 2048, fixture: try GuestMemoryFixture(size: 4 << 20), dataAddress: 0x100000, dataSize: 0x100000)
        let data = h.ring.allocateBuffer(16)
        let length = RingWalkLimits.maxChainDescriptors + 1
        for i in 0..<length {
            let last = i == length - 1
            h.ring.writeDescriptor(i, address: data, length: 16, flags: last ? 0 : SplitGuestDriverRing.next, next: UInt16(i + 1))
        }
        h.ring.publish(head: 0)
        XCTAssertEqual(h.dequeue(), [])
        XCTAssertEqual(h.stats.dropsMalformedDescriptor, 1)
    }

    /// Valid chains of 100 descriptors: a burst stops starting new ones once 2048 were walked.
    func testDescriptorsWalkedPerBurstAreCapped() throws {
        let h = try QueueHarness(size: 4096, fixture: try GuestMemoryFixture(size: 8 << 20), dataAddress: 0x100000, dataSize: 0x400000)
        let perChain = 100
        let frame = QueueHarness.frame(perChain * 16 - 12)
        for _ in 0..<32 {
            h.ring.postTransmit(frame: frame, headerSize: 12, segments: [Int](repeating: 16, count: perChain))
        }
        let first = h.dequeue()
        let expected = (RingWalkLimits.maxDescriptorsPerBurst + perChain - 1) / perChain
        XCTAssertEqual(first.count, expected)
        XCTAssertEqual(first.first, frame)
        XCTAssertEqual(h.dequeue().count, 32 - expected, "the rest come in the next burst")
    }

    // MARK: Packed ring, IN_ORDER

    private final class WriterFlags: Sendable {
        let stop = Atomic<Bool>(false)
        let ready = Atomic<Bool>(false)
        let done = Atomic<Bool>(false)
    }

    private static let inOrder = PackedQueueHarness.modern | VirtioNetFeature.inOrder.mask

    /// An 8-slot ring whose avail position is 5: slots 5..3 (wrapping) are one buffer of
    /// NEXT flags, and slot 4 starts a second whose NEXT flag runs on into those same slots.
    /// Before the bound the walker followed it a whole lap (8 slots), so one burst consumed
    /// 15; when the two walks saw different ids at slot 3 (the guest flips it), the IN_ORDER
    /// batch moved the used position past the ring. Now a buffer cannot reach past what is
    /// left of the lap: the ring is stopped, and no position leaves the ring.
    private func wrappingRing(_ h: PackedQueueHarness, idOfLastBuffer: UInt16) {
        let data = h.ring.allocateBuffer(128)
        h.fixture.write([UInt8](repeating: 0, count: 12) + QueueHarness.frame(60), at: data)
        let next = PackedGuestDriverRing.next
        for slot in [5, 6, 7] {
            h.ring.writeDescriptor(slot, address: data, length: 72, id: UInt16(slot), flags: PackedGuestDriverRing.availableBits(wrap: true) | next)
        }
        let secondLap = PackedGuestDriverRing.availableBits(wrap: false)
        for slot in [0, 1, 2] {
            h.ring.writeDescriptor(slot, address: data, length: 72, id: UInt16(slot), flags: secondLap | next)
        }
        h.ring.writeDescriptor(3, address: data, length: 72, id: idOfLastBuffer, flags: secondLap)
        h.ring.writeDescriptor(4, address: data, length: 72, id: 4, flags: secondLap | next)
    }

    func testAPackedBufferCannotReachPastTheLapItStartedIn() throws {
        let h = try PackedQueueHarness(features: Self.inOrder, size: 8, lastAvailIndex: 5)
        wrappingRing(h, idOfLastBuffer: 3)
        XCTAssertEqual(h.dequeue().count, 1)
        XCTAssertTrue(h.queue.isBroken, "a buffer longer than the rest of the lap breaks the ring")
        XCTAssertLessThan(h.queue.lastUsedIndex, 8)
        XCTAssertLessThan(h.queue.lastAvailIndex, 8)
    }

    /// The guest flips slot 3's id while the device walks: the second walk over it then sees
    /// another id, which used to pass the claim check and let the IN_ORDER batch span more
    /// than the ring.
    func testIDFlippedBetweenPassesNeverMovesTheUsedPositionPastTheRing() throws {
        let fixture = try GuestMemoryFixture()
        let flags = WriterFlags()
        let idAddress = UInt(bitPattern: fixture.pointer(guestPhysical: 3 * 16 + 12))
        let writer = Thread {
            // The guest's own store into its ring, racing the device on purpose.
            let id = UnsafeMutablePointer<UInt16>(bitPattern: idAddress)!
            var value: UInt16 = 3
            flags.ready.store(true, ordering: .releasing)
            while !flags.stop.load(ordering: .relaxed) {
                value = value == 3 ? 4 : 3
                id.pointee = value
            }
            flags.done.store(true, ordering: .releasing)
        }
        writer.start()
        defer {
            // The writer must be gone before the fixture's memory is unmapped.
            flags.stop.store(true, ordering: .relaxed)
            while !flags.done.load(ordering: .acquiring) { usleep(100) }
        }
        while !flags.ready.load(ordering: .acquiring) { usleep(100) }
        for round in 0..<2000 {
            let h = try PackedQueueHarness(features: Self.inOrder, size: 8, fixture: fixture, lastAvailIndex: 5)
            wrappingRing(h, idOfLastBuffer: 3)
            _ = h.dequeue()
            XCTAssertLessThan(h.queue.lastUsedIndex, 8, "round \(round)")
            XCTAssertLessThan(h.queue.lastAvailIndex, 8, "round \(round)")
            if h.queue.lastUsedIndex >= 8 { break }
        }
    }
}
