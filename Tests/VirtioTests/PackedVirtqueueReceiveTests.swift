import TestSupport
import XCTest
@testable import Virtio

/// Guest receive on a packed ring (the switch enqueues): behaviour, mergeable buffers,
/// wrap-around and hostile cases.
final class PackedVirtqueueReceiveTests: XCTestCase {
    private typealias Ring = PackedGuestDriverRing
    private static let mergeable = PackedQueueHarness.modern | VirtioNetFeature.mrgRxbuf.mask

    private func headerBytes(_ header: VirtioNetHeader, size: Int) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: size)
        bytes.withUnsafeMutableBytes { header.store(to: $0.baseAddress!, size: size) }
        return bytes
    }

    func testRoundTripPackedTransmitThenPackedReceive() throws {
        let offloads = VirtioNetFeature.csum.mask | VirtioNetFeature.guestCsum.mask
        let tx = try PackedQueueHarness(features: PackedQueueHarness.modern | offloads)
        let rx = try PackedQueueHarness(features: PackedQueueHarness.modern | offloads)
        let frames = (0..<5).map { QueueHarness.frame(60 + $0 * 300, seed: UInt8($0)) }
        let header = VirtioNetHeader(flags: VirtioNetHeader.flagNeedsChecksum, checksumStart: 34, checksumOffset: 6)
        for frame in frames { tx.ring.postTransmit(frame: frame, header: header, headerSize: 12) }
        let ids = (0..<5).map { _ in rx.ring.postReceive(bufferSizes: [2048]) }
        let count = tx.queue.dequeueBurst(into: tx.buffers, maxCount: 32)
        XCTAssertEqual(count, 5)
        XCTAssertEqual(rx.queue.enqueueBurst(tx.buffers, count: count), 5)
        let used = rx.ring.takeUsed()
        XCTAssertEqual(used.map(\.id), ids)
        var expectedHeader = header
        expectedHeader.bufferCount = 1
        for (i, frame) in frames.enumerated() {
            XCTAssertEqual(Int(used[i].length), 12 + frame.count)
            XCTAssertEqual(rx.ring.receivedBytes(id: ids[i], length: Int(used[i].length)), headerBytes(expectedHeader, size: 12) + frame)
        }
        XCTAssertEqual(rx.stats.packets, 5)
        XCTAssertEqual(rx.stats.bytes, UInt64(frames.map(\.count).reduce(0, +)))
    }

    func testSplitTransmitToPackedReceiveWithTenByteHeader() throws {
        let tx = try QueueHarness(features: QueueHarness.legacy)
        let rx = try PackedQueueHarness(features: VirtioNetFeature.ringPacked.mask)
        XCTAssertEqual(rx.headerSize, 10)
        let frame = QueueHarness.frame(100)
        tx.ring.postTransmit(frame: frame, headerSize: 10)
        let id = rx.ring.postReceive(bufferSizes: [2048])
        XCTAssertEqual(tx.queue.dequeueBurst(into: tx.buffers, maxCount: 32), 1)
        XCTAssertEqual(rx.queue.enqueueBurst(tx.buffers, count: 1), 1)
        XCTAssertEqual(Array(rx.ring.receivedBytes(id: id, length: 110).dropFirst(10)), frame)
    }

    func testReceiveIntoIndirectBuffer() throws {
        let h = try PackedQueueHarness(features: PackedQueueHarness.modern | VirtioNetFeature.indirectDesc.mask)
        let id = h.ring.postReceive(bufferSizes: [12, 30, 100], indirect: true)
        let frame = QueueHarness.frame(120)
        XCTAssertEqual(h.enqueue([frame]), 1)
        XCTAssertEqual(h.ring.takeUsed().map { [UInt32($0.id), $0.length] }, [[UInt32(id), 132]])
        XCTAssertEqual(Array(h.ring.receivedBytes(id: id, length: 132).dropFirst(12)), frame)
        XCTAssertEqual(h.queue.lastAvailIndex, 1)
    }

    func testHeaderSplitAcrossChainedReceiveDescriptors() throws {
        let h = try PackedQueueHarness()
        let id = h.ring.postReceive(bufferSizes: [1, 2, 3, 4, 5, 100])
        let frame = QueueHarness.frame(90)
        let header = VirtioNetHeader(flags: VirtioNetHeader.flagDataValid, headerLength: 0x0102)
        XCTAssertEqual(h.enqueue([frame], header: header), 1)
        var expected = header
        expected.bufferCount = 1
        XCTAssertEqual(h.ring.receivedBytes(id: id, length: 102), headerBytes(expected, size: 12) + frame)
        XCTAssertEqual(h.ring.takeUsed().map(\.id), [id])
        XCTAssertEqual(h.queue.lastUsedIndex, 6, "the used position moves by the buffer's six slots")
    }

    func testMergeableFrameSpansThreeBuffers() throws {
        let h = try PackedQueueHarness(features: Self.mergeable)
        let ids = (0..<4).map { _ in h.ring.postReceive(bufferSizes: [50]) }
        let frame = QueueHarness.frame(120)  // 12 + 120 = 132 = 50 + 50 + 32
        XCTAssertEqual(h.enqueue([frame]), 1)
        XCTAssertEqual(h.ring.takeUsed().map { [UInt32($0.id), $0.length] },
                       [[UInt32(ids[0]), 50], [UInt32(ids[1]), 50], [UInt32(ids[2]), 32]])
        let first = h.ring.receivedBytes(id: ids[0], length: 50)
        XCTAssertEqual(first[10], 3, "num_buffers")
        XCTAssertEqual(first[11], 0)
        let received = Array(first.dropFirst(12)) + h.ring.receivedBytes(id: ids[1], length: 50) + h.ring.receivedBytes(id: ids[2], length: 32)
        XCTAssertEqual(received, frame)
        XCTAssertEqual(h.queue.lastAvailIndex, 3, "the fourth buffer stays available")
        XCTAssertTrue(h.queue.hasAvailableBuffers())
    }

    func testMergeableNumBuffersSplitAcrossDescriptors() throws {
        let h = try PackedQueueHarness(features: Self.mergeable)
        let first = h.ring.postReceive(bufferSizes: [11, 9])
        h.ring.postReceive(bufferSizes: [20])
        h.ring.postReceive(bufferSizes: [20])
        XCTAssertEqual(h.enqueue([QueueHarness.frame(40)]), 1)  // 52 bytes = 20 + 20 + 12
        let bytes = h.ring.receivedBytes(id: first, length: 20)
        XCTAssertEqual(bytes[10], 3)
        XCTAssertEqual(bytes[11], 0)
    }

    func testMergeableRunningOutOfBuffersMidFrameLeavesTheRingAsItWas() throws {
        let h = try PackedQueueHarness(features: Self.mergeable)
        h.ring.postReceive(bufferSizes: [50])
        h.ring.postReceive(bufferSizes: [50])
        let before = (0..<2).map { h.ring.readDescriptor($0) }
        XCTAssertEqual(h.enqueue([QueueHarness.frame(200), QueueHarness.frame(20)]), 0)
        XCTAssertEqual(h.stats.dropsNoBuffers, 2)
        XCTAssertEqual(h.queue.lastAvailIndex, 0)
        XCTAssertEqual(h.ring.takeUsed().count, 0)
        for slot in 0..<2 {
            let now = h.ring.readDescriptor(slot)
            XCTAssertTrue(now == before[slot], "descriptor \(slot) untouched: no used entry written over it")
        }
        XCTAssertEqual(h.enqueue([QueueHarness.frame(60)]), 1, "the buffers are still usable")
    }

    /// The burst's used descriptors are written at its end: a frame delivered before one that
    /// runs out of buffers mid-frame is given back, the later frame's buffers are not.
    func testDeliveredFrameThenFrameOutOfBuffersInOneBurst() throws {
        let h = try PackedQueueHarness(features: Self.mergeable)
        let ids = (0..<3).map { _ in h.ring.postReceive(bufferSizes: [50]) }
        let first = QueueHarness.frame(30)   // 42 bytes: one buffer
        XCTAssertEqual(h.enqueue([first, QueueHarness.frame(200)]), 1)  // the second needs 5 buffers
        XCTAssertEqual(h.stats.dropsNoBuffers, 1)
        XCTAssertEqual(h.ring.takeUsed().map { [UInt32($0.id), $0.length] }, [[UInt32(ids[0]), 42]])
        XCTAssertEqual(Array(h.ring.receivedBytes(id: ids[0], length: 42).dropFirst(12)), first)
        XCTAssertEqual(h.queue.lastAvailIndex, 1, "the second frame's buffers stay available")
        let next = QueueHarness.frame(70)    // 82 bytes = 50 + 32
        XCTAssertEqual(h.enqueue([next]), 1)
        XCTAssertEqual(h.ring.takeUsed().map { [UInt32($0.id), $0.length] }, [[UInt32(ids[1]), 50], [UInt32(ids[2]), 32]])
        XCTAssertEqual(h.ring.receivedBytes(id: ids[1], length: 50)[10], 2, "num_buffers")
    }

    func testReceiveWithoutBuffersCountsNoBuffers() throws {
        let h = try PackedQueueHarness()
        h.ring.postReceive(bufferSizes: [2048])
        XCTAssertEqual(h.enqueue([QueueHarness.frame(60), QueueHarness.frame(60), QueueHarness.frame(60)]), 1)
        XCTAssertEqual(h.stats.dropsNoBuffers, 2)
        XCTAssertEqual(h.stats.packets, 1)
    }

    func testFrameTooLargeForBufferWithoutMergeableIsDroppedAndBufferStaysAvailable() throws {
        let h = try PackedQueueHarness()
        let id = h.ring.postReceive(bufferSizes: [100])
        let small = QueueHarness.frame(80)
        XCTAssertEqual(h.enqueue([QueueHarness.frame(89), small]), 1)
        XCTAssertEqual(h.stats.dropsTooLarge, 1)
        XCTAssertEqual(h.ring.takeUsed().map { [UInt32($0.id), $0.length] }, [[UInt32(id), 92]])
        XCTAssertEqual(Array(h.ring.receivedBytes(id: id, length: 92).dropFirst(12)), small)
    }

    func testReceiveWrapsAroundManyTimes() throws {
        let h = try PackedQueueHarness(features: Self.mergeable, size: 5)
        var laps = 0
        var wrap = h.queue.usedWrapCounter
        for round in 0..<400 {
            // Two buffers of one or two slots; a 100-byte frame needs both 64-byte buffers.
            let ids = [h.ring.postReceive(bufferSizes: round % 2 == 0 ? [64] : [32, 32]), h.ring.postReceive(bufferSizes: [64])]
            let frame = QueueHarness.frame(100, seed: UInt8(truncatingIfNeeded: round))
            XCTAssertEqual(h.enqueue([frame]), 1)
            let used = h.ring.takeUsed()
            XCTAssertEqual(used.map(\.id), ids)
            let received = Array(h.ring.receivedBytes(id: ids[0], length: 64).dropFirst(12)) + h.ring.receivedBytes(id: ids[1], length: 48)
            XCTAssertEqual(received, frame)
            if h.queue.usedWrapCounter != wrap { laps += 1; wrap = h.queue.usedWrapCounter }
        }
        XCTAssertGreaterThan(laps, 100)
        XCTAssertEqual(h.stats.packets, 400)
        XCTAssertEqual(h.stats.dropsNoBuffers, 0)
    }

    // MARK: Hostile

    func testReadOnlyBufferInReceiveRingIsGivenBackEmpty() throws {
        let h = try PackedQueueHarness()
        let bad = h.ring.postChain([(h.ring.allocateBuffer(2048), 2048)], writable: false)
        let good = h.ring.postReceive(bufferSizes: [2048])
        let frame = QueueHarness.frame(60)
        XCTAssertEqual(h.enqueue([frame]), 0, "the burst ends at the invalid buffer")
        XCTAssertEqual(h.ring.takeUsed().map { [UInt32($0.id), $0.length] }, [[UInt32(bad), 0]])
        XCTAssertEqual(h.enqueue([frame]), 1, "the next buffer takes the next burst's frame")
        XCTAssertEqual(h.ring.takeUsed().map { [UInt32($0.id), $0.length] }, [[UInt32(good), 72]])
        XCTAssertEqual(h.stats.dropsMalformedDescriptor, 1)
    }

    func testMalformedBufferInsideMergeableFrameReturnsItsBuffersEmpty() throws {
        let h = try PackedQueueHarness(features: Self.mergeable)
        let first = h.ring.postReceive(bufferSizes: [50])
        let bad = h.ring.postChain([(1 << 40, 50)], writable: true)
        let a = h.ring.postReceive(bufferSizes: [100])
        let b = h.ring.postReceive(bufferSizes: [100])
        let frame = QueueHarness.frame(120)
        XCTAssertEqual(h.enqueue([frame]), 0, "the burst ends at the invalid buffer")
        XCTAssertEqual(h.ring.takeUsed().map { [UInt32($0.id), $0.length] }, [[UInt32(first), 0], [UInt32(bad), 0]])
        XCTAssertEqual(h.enqueue([frame]), 1)
        XCTAssertEqual(h.ring.takeUsed().map { [UInt32($0.id), $0.length] }, [[UInt32(a), 100], [UInt32(b), 32]])
        XCTAssertEqual(h.stats.dropsMalformedDescriptor, 1)
        XCTAssertEqual(h.stats.packets, 1)
    }

    /// One-descriptor buffers take a shorter path than chains; a burst mixing them keeps ring
    /// order, lengths and contents.
    func testBurstMixingOneDescriptorAndChainedBuffers() throws {
        let h = try PackedQueueHarness()
        let a = h.ring.postReceive(bufferSizes: [2048])
        let b = h.ring.postReceive(bufferSizes: [12, 40, 200])
        let c = h.ring.postReceive(bufferSizes: [2048])
        let frames = [QueueHarness.frame(100, seed: 1), QueueHarness.frame(150, seed: 2), QueueHarness.frame(60, seed: 3)]
        XCTAssertEqual(h.enqueue(frames), 3)
        let used = h.ring.takeUsed()
        XCTAssertEqual(used.map { [UInt32($0.id), $0.length] }, [[UInt32(a), 112], [UInt32(b), 162], [UInt32(c), 72]])
        for (id, frame) in zip([a, b, c], frames) {
            XCTAssertEqual(Array(h.ring.receivedBytes(id: id, length: 12 + frame.count).dropFirst(12)), frame)
        }
        XCTAssertEqual(h.queue.lastAvailIndex, 5)
        XCTAssertEqual(h.stats.packets, 3)
    }

    /// A one-descriptor buffer whose frame would fit in mapped memory but whose stated length
    /// reaches past it is refused whole, as a chain's would be.
    func testOneDescriptorReachingPastMappedMemoryIsGivenBackEmpty() throws {
        let fixture = try GuestMemoryFixture.twoAdjacentRegions()
        let h = try PackedQueueHarness(fixture: fixture)
        let bad = h.ring.postChain([((1 << 20) - 200, 400)], writable: true)
        let good = h.ring.postReceive(bufferSizes: [2048])
        XCTAssertEqual(h.enqueue([QueueHarness.frame(60)]), 0, "the burst ends at the invalid buffer")
        XCTAssertEqual(h.enqueue([QueueHarness.frame(60)]), 1)
        XCTAssertEqual(h.ring.takeUsed().map { [UInt32($0.id), $0.length] }, [[UInt32(bad), 0], [UInt32(good), 72]])
        XCTAssertEqual(h.stats.dropsMalformedDescriptor, 1)
        XCTAssertEqual(fixture.read(at: (1 << 20) - 200, count: 72), [UInt8](repeating: 0, count: 72), "nothing written into it")
    }

    func testSameReceiveIDTwiceIsUsedOnce() throws {
        let h = try PackedQueueHarness()
        let id = h.ring.postReceive(bufferSizes: [2048])
        h.ring.postChain([(h.ring.allocateBuffer(2048), 2048)], writable: true, id: id)
        XCTAssertEqual(h.enqueue([QueueHarness.frame(60), QueueHarness.frame(60)]), 1)
        XCTAssertEqual(h.stats.invalidHeads, 1)
        XCTAssertEqual(h.stats.dropsNoBuffers, 1, "the burst ends at the repeated id")
    }

    func testReceiveNextFlagsThatNeverEndBreakTheRing() throws {
        let h = try PackedQueueHarness(size: 4)
        for slot in 0..<4 {
            h.ring.writeDescriptor(slot, address: 0x10000, length: 4, id: 0, flags: Ring.availableBits(wrap: true) | Ring.next | Ring.write)
        }
        XCTAssertEqual(h.enqueue([QueueHarness.frame(60)]), 0)
        XCTAssertTrue(h.queue.isBroken)
        XCTAssertEqual(h.stats.ringErrors, 1)
        XCTAssertEqual(h.stats.dropsNoBuffers, 1)
        XCTAssertEqual(h.enqueue([QueueHarness.frame(60)]), 0)
        XCTAssertEqual(h.stats.dropsNoBuffers, 2)
    }

    func testReceiveBufferShorterThanNetHeaderIsNotUsed() throws {
        let h = try PackedQueueHarness()
        h.ring.postReceive(bufferSizes: [8])
        XCTAssertEqual(h.enqueue([QueueHarness.frame(60)]), 0)
        XCTAssertEqual(h.ring.takeUsed().count, 0)
        XCTAssertEqual(h.stats.dropsTooLarge, 1)
        XCTAssertEqual(h.queue.lastAvailIndex, 0, "it stays available")
    }

    /// A receive buffer that is the descriptor ring itself: the frame overwrites the
    /// descriptors being walked; the walk uses what it read, and the used descriptor is whole.
    func testGuestRewritingDescriptorAfterReadUsesTheCopy() throws {
        let h = try PackedQueueHarness(size: 16)
        let second = h.ring.allocateBuffer(256)
        let avail = Ring.availableBits(wrap: true)
        h.ring.writeDescriptor(1, address: second, length: 256, id: 5, flags: avail | Ring.write)
        h.ring.writeDescriptor(0, address: h.ring.descriptorRingAddress, length: 16, id: 5, flags: avail | Ring.write | Ring.next)
        let frame = [UInt8](repeating: 0xff, count: 100)  // turns slot 0 into id 0xffff, flags 0xffff
        XCTAssertEqual(h.enqueue([frame]), 1)
        XCTAssertEqual(h.ring.takeUsed().map { [UInt32($0.id), $0.length] }, [[5, 112]])
        XCTAssertEqual(h.fixture.read(at: second, count: 96), Array(frame[4...]))
        XCTAssertEqual(h.queue.lastAvailIndex, 2)
        XCTAssertEqual(h.stats.dropsMalformedDescriptor, 0)
    }

    func testFrameShorterThan14BytesAndOffloadNotNegotiatedAreDropped() throws {
        let h = try PackedQueueHarness()
        h.ring.postReceive(bufferSizes: [2048])
        let header = VirtioNetHeader(flags: VirtioNetHeader.flagNeedsChecksum, checksumStart: 34, checksumOffset: 6)
        XCTAssertEqual(h.enqueue([QueueHarness.frame(13)]), 0)
        XCTAssertEqual(h.enqueue([QueueHarness.frame(60)], header: header), 0)
        XCTAssertEqual(h.stats.dropsTooShort, 1)
        XCTAssertEqual(h.stats.dropsUnsupportedOffload, 1)
        XCTAssertEqual(h.queue.lastAvailIndex, 0)
    }
}
