import TestSupport
import XCTest
@testable import Virtio

/// Guest receive (the switch enqueues): functional behaviour and hostile ring cases.
final class SplitVirtqueueReceiveTests: XCTestCase {
    private typealias Ring = SplitGuestDriverRing
    private static let mergeable = QueueHarness.modern | VirtioNetFeature.mrgRxbuf.mask

    private func headerBytes(_ header: VirtioNetHeader, size: Int) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: size)
        bytes.withUnsafeMutableBytes { header.store(to: $0.baseAddress!, size: size) }
        return bytes
    }

    func testRoundTripTransmitThenReceiveWithTwelveByteHeader() throws {
        try roundTrip(features: QueueHarness.modern, headerSize: 12)
    }

    func testRoundTripTransmitThenReceiveWithTenByteHeader() throws {
        try roundTrip(features: QueueHarness.legacy, headerSize: 10)
    }

    private func roundTrip(features: UInt64, headerSize: Int) throws {
        let offloads = VirtioNetFeature.csum.mask | VirtioNetFeature.guestCsum.mask
        let tx = try QueueHarness(features: features | offloads)
        let rx = try QueueHarness(features: features | offloads)
        let frames = (0..<5).map { QueueHarness.frame(60 + $0 * 300, seed: UInt8($0)) }
        let header = VirtioNetHeader(flags: VirtioNetHeader.flagNeedsChecksum, checksumStart: 34, checksumOffset: 6)
        for frame in frames { tx.ring.postTransmit(frame: frame, header: header, headerSize: headerSize) }
        let heads = (0..<5).map { _ in rx.ring.postReceive(bufferSizes: [2048]) }
        let count = tx.queue.dequeueBurst(into: tx.buffers, maxCount: 32)
        XCTAssertEqual(count, 5)
        XCTAssertEqual(rx.queue.enqueueBurst(tx.buffers, count: count), 5)
        let used = rx.ring.takeUsedEntries()
        XCTAssertEqual(used.map(\.id), heads.map(UInt32.init))
        var expectedHeader = header
        expectedHeader.bufferCount = 1
        for (i, frame) in frames.enumerated() {
            XCTAssertEqual(Int(used[i].length), headerSize + frame.count)
            XCTAssertEqual(rx.ring.receivedBytes(id: heads[i], length: Int(used[i].length)),
                           headerBytes(expectedHeader, size: headerSize) + frame)
        }
        XCTAssertEqual(rx.stats.packets, 5)
        XCTAssertEqual(rx.stats.bytes, UInt64(frames.map(\.count).reduce(0, +)))
    }

    func testReceiveIntoIndirectChain() throws {
        let h = try QueueHarness(features: QueueHarness.modern | VirtioNetFeature.indirectDesc.mask)
        let head = h.ring.postReceive(bufferSizes: [12, 30, 100], indirect: true)
        let frame = QueueHarness.frame(120)
        XCTAssertEqual(h.enqueue([frame]), 1)
        XCTAssertEqual(h.ring.takeUsedEntries().map { [$0.id, $0.length] }, [[UInt32(head), 132]])
        XCTAssertEqual(Array(h.ring.receivedBytes(id: head, length: 132).dropFirst(12)), frame)
    }

    func testHeaderSplitAcrossReceiveDescriptorsWorks() throws {
        let h = try QueueHarness()
        let head = h.ring.postReceive(bufferSizes: [1, 2, 3, 4, 5, 100])
        let frame = QueueHarness.frame(90)
        let header = VirtioNetHeader(flags: VirtioNetHeader.flagDataValid, headerLength: 0x0102)
        XCTAssertEqual(h.enqueue([frame], header: header), 1)
        var expected = header
        expected.bufferCount = 1
        XCTAssertEqual(h.ring.receivedBytes(id: head, length: 102), headerBytes(expected, size: 12) + frame)
    }

    func testMergeableFrameSpansThreeBuffers() throws {
        let h = try QueueHarness(features: Self.mergeable)
        let heads = (0..<4).map { _ in h.ring.postReceive(bufferSizes: [50]) }
        let frame = QueueHarness.frame(120)  // 12 + 120 = 132 = 50 + 50 + 32
        XCTAssertEqual(h.enqueue([frame]), 1)
        XCTAssertEqual(h.ring.takeUsedEntries().map { [$0.id, $0.length] },
                       [[UInt32(heads[0]), 50], [UInt32(heads[1]), 50], [UInt32(heads[2]), 32]])
        let first = h.ring.receivedBytes(id: heads[0], length: 50)
        XCTAssertEqual(first[10], 3, "num_buffers")
        XCTAssertEqual(first[11], 0)
        let received = Array(first.dropFirst(12)) + h.ring.receivedBytes(id: heads[1], length: 50)
            + h.ring.receivedBytes(id: heads[2], length: 32)
        XCTAssertEqual(received, frame)
        XCTAssertEqual(h.queue.lastAvailIndex, 3, "the fourth buffer stays posted")
    }

    func testMergeableNumBuffersSplitAcrossDescriptors() throws {
        let h = try QueueHarness(features: Self.mergeable)
        // Header byte 10 ends the first descriptor, byte 11 starts the second.
        let first = h.ring.postReceive(bufferSizes: [11, 9])
        h.ring.postReceive(bufferSizes: [20])
        h.ring.postReceive(bufferSizes: [20])
        XCTAssertEqual(h.enqueue([QueueHarness.frame(40)]), 1)  // 52 bytes = 20 + 20 + 12
        let bytes = h.ring.receivedBytes(id: first, length: 20)
        XCTAssertEqual(bytes[10], 3)
        XCTAssertEqual(bytes[11], 0)
    }

    func testMergeableSingleBufferSetsNumBuffersToOne() throws {
        let h = try QueueHarness(features: Self.mergeable)
        let head = h.ring.postReceive(bufferSizes: [1600])
        XCTAssertEqual(h.enqueue([QueueHarness.frame(60)]), 1)
        XCTAssertEqual(h.ring.receivedBytes(id: head, length: 12)[10], 1)
    }

    func testMergeableRunningOutOfBuffersMidFrameConsumesNothing() throws {
        let h = try QueueHarness(features: Self.mergeable)
        h.ring.postReceive(bufferSizes: [50])
        h.ring.postReceive(bufferSizes: [50])
        XCTAssertEqual(h.enqueue([QueueHarness.frame(200), QueueHarness.frame(20)]), 0)
        XCTAssertEqual(h.stats.dropsNoBuffers, 2)
        XCTAssertEqual(h.queue.lastAvailIndex, 0)
        XCTAssertEqual(h.ring.usedIndex, 0)
        XCTAssertEqual(h.enqueue([QueueHarness.frame(60)]), 1, "the buffers are still usable")
    }

    func testReceiveWithoutBuffersCountsNoBuffers() throws {
        let h = try QueueHarness()
        h.ring.postReceive(bufferSizes: [2048])
        XCTAssertEqual(h.enqueue([QueueHarness.frame(60), QueueHarness.frame(60), QueueHarness.frame(60)]), 1)
        XCTAssertEqual(h.stats.dropsNoBuffers, 2)
        XCTAssertEqual(h.stats.packets, 1)
    }

    func testFrameTooLargeForChainWithoutMergeableBuffersIsDroppedAndChainStaysPosted() throws {
        let h = try QueueHarness()
        let head = h.ring.postReceive(bufferSizes: [100])
        let small = QueueHarness.frame(80)
        XCTAssertEqual(h.enqueue([QueueHarness.frame(89), small]), 1)
        XCTAssertEqual(h.stats.dropsTooLarge, 1)
        XCTAssertEqual(h.ring.takeUsedEntries().map { [$0.id, $0.length] }, [[UInt32(head), 92]])
        XCTAssertEqual(Array(h.ring.receivedBytes(id: head, length: 92).dropFirst(12)), small)
    }

    func testReceiveChainShorterThanNetHeaderIsNotUsed() throws {
        let h = try QueueHarness()
        h.ring.postReceive(bufferSizes: [8])
        XCTAssertEqual(h.enqueue([QueueHarness.frame(60)]), 0)
        XCTAssertEqual(h.ring.usedIndex, 0)
        XCTAssertEqual(h.stats.dropsTooLarge, 1)
    }

    func testFrameShorterThan14BytesIsNotDelivered() throws {
        let h = try QueueHarness()
        h.ring.postReceive(bufferSizes: [2048])
        XCTAssertEqual(h.enqueue([QueueHarness.frame(13)]), 0)
        XCTAssertEqual(h.stats.dropsTooShort, 1)
        XCTAssertEqual(h.ring.usedIndex, 0)
    }

    func testFrameLongerThanItsBufferCapacityIsNotDelivered() throws {
        let h = try QueueHarness()
        h.ring.postReceive(bufferSizes: [2048])
        h.buffers[0].length = h.bufferCapacity + 1
        XCTAssertEqual(h.queue.enqueueBurst(h.buffers, count: 1), 0)
        XCTAssertEqual(h.stats.dropsTooLarge, 1)
    }

    func testOffloadTheGuestDidNotNegotiateIsDropped() throws {
        let h = try QueueHarness()  // no GUEST_CSUM, no GUEST_TSO4
        for _ in 0..<3 { h.ring.postReceive(bufferSizes: [2048]) }
        XCTAssertEqual(h.enqueue([QueueHarness.frame(60)], header: VirtioNetHeader(flags: VirtioNetHeader.flagNeedsChecksum)), 0)
        XCTAssertEqual(h.enqueue([QueueHarness.frame(60)], header: VirtioNetHeader(gsoType: VirtioNetHeader.gsoTCPv4, gsoSize: 1448)), 0)
        XCTAssertEqual(h.enqueue([QueueHarness.frame(60)], header: VirtioNetHeader(flags: VirtioNetHeader.flagDataValid)), 1)
        XCTAssertEqual(h.stats.dropsUnsupportedOffload, 2)
    }

    func testReadOnlyBufferInReceiveChainIsMalformed() throws {
        let h = try QueueHarness()
        let data = h.ring.allocateBuffer(2048)
        h.fixture.fill(0x55, at: data, count: 2048)
        h.ring.writeDescriptor(0, address: data, length: 2048, flags: 0)
        _ = h.ring.allocateDescriptor()
        h.ring.publish(head: 0)
        let good = h.ring.postReceive(bufferSizes: [2048])
        let frame = QueueHarness.frame(60)
        XCTAssertEqual(h.enqueue([frame]), 0, "the burst ends at the invalid chain")
        XCTAssertEqual(h.enqueue([frame]), 1)
        XCTAssertEqual(h.ring.takeUsedEntries().map { [$0.id, $0.length] }, [[0, 0], [UInt32(good), 72]])
        XCTAssertEqual(h.stats.dropsMalformedDescriptor, 1)
        XCTAssertEqual(h.fixture.read(at: data, count: 2048), [UInt8](repeating: 0x55, count: 2048), "read-only memory untouched")
    }

    func testMalformedChainInsideMergeableFrameReturnsItsBuffersEmpty() throws {
        let h = try QueueHarness(features: Self.mergeable)
        let a = h.ring.postReceive(bufferSizes: [50])
        let bad = UInt16(h.ring.allocateDescriptor())
        h.ring.writeDescriptor(Int(bad), address: 0x4000_0000, length: 50, flags: Ring.write)
        h.ring.publish(head: bad)
        let b = h.ring.postReceive(bufferSizes: [200])
        XCTAssertEqual(h.enqueue([QueueHarness.frame(100)]), 0, "the burst ends at the invalid chain")
        XCTAssertEqual(h.enqueue([QueueHarness.frame(100)]), 1)
        XCTAssertEqual(h.ring.takeUsedEntries().map { [$0.id, $0.length] }, [[UInt32(a), 0], [UInt32(bad), 0], [UInt32(b), 112]])
        XCTAssertEqual(h.ring.receivedBytes(id: b, length: 12)[10], 1)
        XCTAssertEqual(h.stats.dropsMalformedDescriptor, 1)
    }

    /// A receive descriptor whose stated length crosses into the next region is refused whole:
    /// where the 72 bytes of header and frame would not fit before the boundary, and where
    /// they would (the one-descriptor path must translate the stated length, as the walker does).
    func testReceiveDescriptorCrossingTwoRegionsIsMalformed() throws {
        for (before, length) in [(64, 128), (200, 400)] {
            let fixture = try GuestMemoryFixture.twoAdjacentRegions(firstSize: 0x80000, secondSize: 0x80000)
            let h = try QueueHarness(fixture: fixture)
            let head = h.ring.postReceive(buffers: [(address: 0x80000 - UInt64(before), length: length)])
            XCTAssertEqual(h.enqueue([QueueHarness.frame(60)]), 0)
            XCTAssertEqual(h.ring.takeUsedEntries().map { [$0.id, $0.length] }, [[UInt32(head), 0]], "\(before) bytes before")
            XCTAssertEqual(h.stats.dropsMalformedDescriptor, 1)
            XCTAssertEqual(h.stats.dropsNoBuffers, 1)
        }
    }

    /// One-descriptor chains take a shorter path than longer chains; a burst mixing them
    /// keeps ring order, lengths and contents.
    func testBurstMixingOneDescriptorAndLongerChains() throws {
        let h = try QueueHarness()
        let a = h.ring.postReceive(bufferSizes: [2048])
        let b = h.ring.postReceive(bufferSizes: [12, 40, 200])
        let c = h.ring.postReceive(bufferSizes: [2048])
        let frames = [QueueHarness.frame(100, seed: 1), QueueHarness.frame(150, seed: 2), QueueHarness.frame(60, seed: 3)]
        XCTAssertEqual(h.enqueue(frames), 3)
        XCTAssertEqual(h.ring.takeUsedEntries().map { [$0.id, $0.length] },
                       [[UInt32(a), 112], [UInt32(b), 162], [UInt32(c), 72]])
        for (head, frame) in zip([a, b, c], frames) {
            XCTAssertEqual(Array(h.ring.receivedBytes(id: head, length: 12 + frame.count).dropFirst(12)), frame)
        }
        XCTAssertEqual(h.stats.packets, 3)
    }

    func testSameReceiveHeadSubmittedTwiceIsUsedOnce() throws {
        let h = try QueueHarness()
        let head = h.ring.postReceive(bufferSizes: [2048])
        h.ring.publish(head: head)
        XCTAssertEqual(h.enqueue([QueueHarness.frame(60), QueueHarness.frame(60)]), 1)
        XCTAssertEqual(h.ring.takeUsedEntries().map(\.id), [UInt32(head)])
        XCTAssertEqual(h.stats.invalidHeads, 1)
        XCTAssertEqual(h.stats.dropsNoBuffers, 1)
    }

    func testReceiveAvailIndexMoreThanRingSizeAheadIsRejected() throws {
        let h = try QueueHarness(size: 16)
        h.ring.postReceive(bufferSizes: [2048])
        h.ring.setAvailIndex(40)
        XCTAssertEqual(h.enqueue([QueueHarness.frame(60)]), 0)
        XCTAssertTrue(h.queue.isBroken)
        XCTAssertEqual(h.queue.lastAvailIndex, 0)
        XCTAssertEqual(h.ring.usedIndex, 0)
        XCTAssertEqual(h.stats.ringErrors, 1)
        XCTAssertEqual(h.stats.dropsNoBuffers, 1)
    }

    /// The device's own write rewrites the descriptor it just read: the walk must go on with
    /// the copy it took (next = 1), not re-read the table (now packet bytes).
    func testGuestRewritingDescriptorAfterReadUsesTheCopy() throws {
        let h = try QueueHarness(size: 16)
        let table = h.ring.descriptorTableAddress
        let second = h.ring.allocateBuffer(256)
        h.ring.writeDescriptor(0, address: table, length: 16, flags: Ring.write | Ring.next, next: 1)
        h.ring.writeDescriptor(1, address: second, length: 256, flags: Ring.write)
        h.ring.publish(head: 0)
        let frame = [UInt8](repeating: 0xff, count: 100)  // turns descriptor 0 into flags = next = 0xffff
        XCTAssertEqual(h.enqueue([frame]), 1)
        XCTAssertEqual(h.ring.takeUsedEntries().map { [$0.id, $0.length] }, [[0, 112]])
        XCTAssertEqual(h.fixture.read(at: second, count: 96), Array(frame[4...]))
        XCTAssertEqual(h.stats.dropsMalformedDescriptor, 0)
    }
}
