import TestSupport
import XCTest
@testable import Virtio

/// Guest transmit on a packed ring (the switch dequeues): behaviour, wrap-around, and the
/// packed versions of the hostile ring cases.
final class PackedVirtqueueTransmitTests: XCTestCase {
    private typealias Ring = PackedGuestDriverRing
    private static let indirect = PackedQueueHarness.modern | VirtioNetFeature.indirectDesc.mask

    // MARK: Functional

    /// IN_ORDER (2.8.9): a transmitted batch comes back as one used descriptor carrying the
    /// last buffer's id, written where the batch started; the used position skips the whole
    /// batch (with its chained descriptors), and the next burst's descriptor follows it.
    func testInOrderBatchIsGivenBackWithOneUsedDescriptor() throws {
        let h = try PackedQueueHarness(features: PackedQueueHarness.modern | VirtioNetFeature.inOrder.mask)
        let frames = (0..<3).map { QueueHarness.frame(60 + $0) }
        let first = h.ring.postTransmit(frame: frames[0], headerSize: h.headerSize)
        h.ring.postTransmit(frame: frames[1], headerSize: h.headerSize, segments: [h.headerSize, 61])  // two descriptors
        let last = h.ring.postTransmit(frame: frames[2], headerSize: h.headerSize)
        XCTAssertEqual(h.dequeue(), frames)
        let used = h.ring.readDescriptor(0)
        XCTAssertEqual(used.id, last, "the batch's used descriptor names its last buffer (first was \(first))")
        XCTAssertEqual(used.flags & (PackedGuestDriverRing.availFlag | PackedGuestDriverRing.usedFlag),
                       PackedGuestDriverRing.availFlag | PackedGuestDriverRing.usedFlag, "marked used in the first lap")
        for slot in 1..<4 {
            XCTAssertEqual(h.ring.readDescriptor(slot).flags & PackedGuestDriverRing.usedFlag, 0, "slot \(slot) is not written")
        }
        XCTAssertEqual(h.queue.lastUsedIndex, 4, "the used position skips the batch's four descriptors")
        let next = QueueHarness.frame(80)
        let nextID = h.ring.postTransmit(frame: next, headerSize: h.headerSize)
        XCTAssertEqual(h.dequeue(), [next])
        XCTAssertEqual(h.ring.readDescriptor(4).id, nextID)
        XCTAssertEqual(h.queue.lastUsedIndex, 5)
    }

    /// Without a used descriptor for every buffer (an id repeated in the batch is skipped),
    /// the batch is given back one descriptor per buffer.
    func testInOrderBatchWithAnInvalidIDFallsBackToOneDescriptorEach() throws {
        let h = try PackedQueueHarness(features: PackedQueueHarness.modern | VirtioNetFeature.inOrder.mask)
        let a = h.ring.postTransmit(frame: QueueHarness.frame(60), headerSize: h.headerSize)
        let b = h.ring.postTransmit(frame: QueueHarness.frame(60), headerSize: h.headerSize)
        let bytes = [UInt8](repeating: 0, count: h.headerSize) + QueueHarness.frame(60)
        let address = h.ring.allocateBuffer(bytes.count)
        h.ring.fixture.write(bytes, at: address)
        h.ring.postChain([(address, h.headerSize + 60)], writable: false, id: a)  // a again
        XCTAssertEqual(h.dequeue().count, 2)
        XCTAssertEqual(h.stats.invalidHeads, 1)
        XCTAssertEqual(h.ring.readDescriptor(0).id, a)
        XCTAssertEqual(h.ring.readDescriptor(1).id, b)
        XCTAssertEqual(h.ring.readDescriptor(1).flags & PackedGuestDriverRing.usedFlag, PackedGuestDriverRing.usedFlag)
    }

    func testTransmitWithTwelveByteHeader() throws {
        let h = try PackedQueueHarness(features: PackedQueueHarness.modern | VirtioNetFeature.csum.mask | VirtioNetFeature.hostTso4.mask)
        let frame = QueueHarness.frame(1000)
        let header = VirtioNetHeader(flags: VirtioNetHeader.flagNeedsChecksum, gsoType: VirtioNetHeader.gsoTCPv4, headerLength: 54,
                                     gsoSize: 536, checksumStart: 34, checksumOffset: 16, bufferCount: 0)
        let id = h.ring.postTransmit(frame: frame, header: header, headerSize: 12)
        XCTAssertTrue(h.queue.hasAvailableBuffers())
        XCTAssertEqual(h.dequeue(), [frame])
        XCTAssertEqual(h.buffers[0].header, header)
        XCTAssertEqual(h.ring.takeUsed().map { [$0.id, UInt16($0.length)] }, [[id, 0]])
        XCTAssertEqual(h.queue.lastAvailIndex, 1)
        XCTAssertEqual(h.queue.lastUsedIndex, 1)
        XCTAssertTrue(h.queue.availWrapCounter)
        XCTAssertFalse(h.queue.hasAvailableBuffers())
        XCTAssertEqual(h.stats.packets, 1)
        XCTAssertEqual(h.stats.bytes, 1000)
        XCTAssertEqual(h.dequeue(), [])
    }

    func testChainedDescriptorsWithHeaderSplitAcrossThem() throws {
        let h = try PackedQueueHarness()
        let frame = QueueHarness.frame(300)
        let id = h.ring.postTransmit(frame: frame, headerSize: 12, segments: [5, 7, 100, 1, 199])
        XCTAssertEqual(h.dequeue(), [frame])
        XCTAssertEqual(h.ring.takeUsed().map(\.id), [id])
        XCTAssertEqual(h.queue.lastAvailIndex, 5, "the used position moves by the chain's five slots")
        XCTAssertEqual(h.queue.lastUsedIndex, 5)
    }

    func testIndirectDescriptorsTransmit() throws {
        let h = try PackedQueueHarness(features: Self.indirect)
        let frame = QueueHarness.frame(300)
        h.ring.postTransmit(frame: frame, headerSize: 12, segments: [12, 100, 1, 199], indirect: true)
        XCTAssertEqual(h.dequeue(), [frame])
        XCTAssertEqual(h.queue.lastAvailIndex, 1, "an indirect buffer takes one ring slot")
        XCTAssertEqual(h.stats.dropsMalformedDescriptor, 0)
    }

    func testBurstStopsAtMaxCountAndResumes() throws {
        let h = try PackedQueueHarness()
        let frames = (0..<10).map { QueueHarness.frame(64, seed: UInt8($0)) }
        for frame in frames { h.ring.postTransmit(frame: frame, headerSize: 12) }
        XCTAssertEqual(h.dequeue(max: 4), Array(frames[0..<4]))
        XCTAssertEqual(h.queue.lastAvailIndex, 4)
        XCTAssertEqual(h.ring.takeUsed().count, 4)
        XCTAssertEqual(h.dequeue(max: 32), Array(frames[4...]))
        XCTAssertEqual(h.ring.takeUsed().count, 6)
    }

    /// An odd ring size (packed rings need not be a power of two), chains of 1 to 3 slots so
    /// buffers straddle the ring's end, many laps: wrap counters flip and nothing is lost.
    func testWrapAroundManyTimesWithChainsAcrossTheEnd() throws {
        let h = try PackedQueueHarness(size: 7)
        var laps = 0
        var lastWrap = h.queue.availWrapCounter
        var delivered = 0
        for round in 0..<300 {
            let frames = (0..<2).map { QueueHarness.frame(60 + $0, seed: UInt8(truncatingIfNeeded: round)) }
            let segments = [[72], [12, 60], [6, 6, 60]][round % 3]
            let ids = [h.ring.postTransmit(frame: frames[0], headerSize: 12, segments: segments),
                       h.ring.postTransmit(frame: frames[1], headerSize: 12)]
            XCTAssertEqual(h.dequeue(), frames)
            XCTAssertEqual(h.ring.takeUsed().map(\.id), ids)
            delivered += 2
            if h.queue.availWrapCounter != lastWrap { laps += 1; lastWrap = h.queue.availWrapCounter }
        }
        XCTAssertGreaterThan(laps, 100)
        XCTAssertEqual(h.stats.packets, UInt64(delivered))
        XCTAssertEqual(h.queue.lastUsedIndex, h.queue.lastAvailIndex)
        XCTAssertEqual(h.queue.usedWrapCounter, h.queue.availWrapCounter)
        XCTAssertEqual(h.ring.nextAvail, Int(h.queue.lastAvailIndex))
        XCTAssertEqual(h.ring.availWrap, h.queue.availWrapCounter)
    }

    func testStartsFromGivenPositionAndWrapCounter() throws {
        // As after SET_VRING_BASE 0x0003 | 0 << 15: slot 3, wrap counter 0.
        let fixture = try GuestMemoryFixture()
        let ring = try Ring(fixture: fixture, size: 8)
        // Drive the driver to slot 3 of its second lap (wrap 0) by posting and forgetting.
        for _ in 0..<11 { ring.postChain([(0x10000, 64)], writable: false) }
        XCTAssertFalse(ring.availWrap)
        let queue = PackedVirtqueue(layout: try ring.layout(),
                                    settings: NegotiatedRingSettings(memory: fixture.memory, negotiatedFeatures: PackedQueueHarness.modern),
                                    lastAvailIndex: 3, availWrapCounter: false)
        XCTAssertFalse(queue.hasAvailableBuffers(), "slots 3... still carry the first lap's marks")
        for i in 0..<5 { ring.postTransmit(frame: QueueHarness.frame(60, seed: UInt8(i)), headerSize: 12) }
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: 2048 * 8, alignment: 16)
        defer { buffer.deallocate() }
        var packets = (0..<8).map { PacketBuffer(data: buffer + $0 * 2048, capacity: 2048) }
        XCTAssertEqual(queue.dequeueBurst(into: &packets, maxCount: 8), 5)
        XCTAssertEqual(queue.lastAvailIndex, 0)
        XCTAssertTrue(queue.availWrapCounter, "wrapped past slot 7")
        XCTAssertEqual(queue.vringBase, 0x8000)
    }

    func testBaseEncodingMatchesDPDK() {
        XCTAssertEqual(PackedVirtqueue.encodeBase(index: 5, wrap: true), 0x8005)
        XCTAssertEqual(PackedVirtqueue.encodeBase(index: 0x7fff, wrap: false), 0x7fff)
        XCTAssertTrue(PackedVirtqueue.decodeBase(0x8005) == (5, true))
        XCTAssertTrue(PackedVirtqueue.decodeBase(0x0005) == (5, false))
    }

    func testBaseOutsideTheRingBreaksTheQueue() throws {
        let h = try PackedQueueHarness(size: 8, lastAvailIndex: 8)
        XCTAssertTrue(h.queue.isBroken)
        XCTAssertEqual(h.stats.ringErrors, 1)
        h.ring.postTransmit(frame: QueueHarness.frame(60), headerSize: 12)
        XCTAssertEqual(h.dequeue(), [])
        XCTAssertEqual(h.ring.takeUsed().count, 0)
    }

    // MARK: Hostile rings

    func testDescriptorWithWrongWrapMarksIsNotTaken() throws {
        let h = try PackedQueueHarness()
        // AVAIL and USED both set with wrap 1 reads as a used descriptor; neither set as the
        // next lap's: neither is available to the device.
        h.ring.writeDescriptor(0, address: 0x10000, length: 72, id: 0, flags: Ring.availFlag | Ring.usedFlag)
        XCTAssertFalse(h.queue.hasAvailableBuffers())
        h.ring.writeDescriptor(0, address: 0x10000, length: 72, id: 0, flags: 0)
        XCTAssertFalse(h.queue.hasAvailableBuffers())
        XCTAssertEqual(h.dequeue(), [])
        h.ring.writeDescriptor(0, address: 0x10000, length: 72, id: 0, flags: Ring.usedFlag)
        XCTAssertFalse(h.queue.hasAvailableBuffers(), "USED without AVAIL is the next lap's mark")
    }

    func testBufferIDAtOrAboveRingSizeIsSkipped() throws {
        let h = try PackedQueueHarness(size: 8)
        let frame = QueueHarness.frame(60)
        h.ring.postTransmit(frame: frame, headerSize: 12)
        let bad = h.ring.postChain([(h.ring.allocateBuffer(72), 72)], writable: false, id: 8)
        h.ring.postTransmit(frame: frame, headerSize: 12)
        XCTAssertEqual(bad, 8)
        XCTAssertEqual(h.dequeue(), [frame], "the burst ends at the bad buffer")
        XCTAssertEqual(h.stats.invalidHeads, 1)
        XCTAssertEqual(h.queue.lastAvailIndex, 2, "the bad buffer's slot is consumed")
        XCTAssertEqual(h.queue.lastUsedIndex, 1, "but no used descriptor is written for it")
        XCTAssertEqual(h.dequeue(), [frame], "the next buffer flows in the next burst")
        XCTAssertEqual(h.queue.lastAvailIndex, 3)
        XCTAssertEqual(h.queue.lastUsedIndex, 2)
    }

    func testSameBufferIDTwiceInABurstIsTakenOnce() throws {
        let h = try PackedQueueHarness(size: 8)
        let frame = QueueHarness.frame(60)
        let id = h.ring.postTransmit(frame: frame, headerSize: 12)
        h.ring.postChain([(h.ring.allocateBuffer(72), 72)], writable: false, id: id)
        XCTAssertEqual(h.dequeue(), [frame])
        XCTAssertEqual(h.stats.invalidHeads, 1)
    }

    /// One-descriptor buffers take a shorter path than chains; a burst mixing them keeps order,
    /// and an id taken on the short path is refused on the chain path too.
    func testBurstMixingOneDescriptorAndChainedBuffers() throws {
        let h = try PackedQueueHarness()
        let frames = (0..<4).map { QueueHarness.frame(80 + 10 * $0, seed: UInt8($0)) }
        let first = h.ring.postTransmit(frame: frames[0], headerSize: 12)
        h.ring.postTransmit(frame: frames[1], headerSize: 12, segments: [12, 30, 60])
        h.ring.postTransmit(frame: frames[2], headerSize: 12)
        h.ring.postTransmit(frame: frames[3], headerSize: 12, segments: [20, 102])
        h.ring.postChain([(h.ring.allocateBuffer(40), 20), (h.ring.allocateBuffer(80), 80)], writable: false, id: first)
        XCTAssertEqual(h.dequeue(), frames)
        XCTAssertEqual(h.stats.invalidHeads, 1)
        XCTAssertEqual(h.queue.lastAvailIndex, 9)
        XCTAssertEqual(h.queue.lastUsedIndex, 7, "no used descriptor for the refused id")
    }

    /// finishBurst records the counters without testing them: only bursts that took something
    /// may get there, or `bursts` would count empty polls.
    func testEmptyPollsAreNotCountedAsBursts() throws {
        let h = try PackedQueueHarness()
        for _ in 0..<3 { XCTAssertEqual(h.dequeue(), []) }
        XCTAssertEqual(h.stats.bursts, 0)
        h.ring.postTransmit(frame: QueueHarness.frame(60), headerSize: 12)
        XCTAssertEqual(h.dequeue().count, 1)
        XCTAssertEqual(h.dequeue(), [])
        XCTAssertEqual(h.stats.bursts, 1)
    }

    func testChainOfExactlyRingSizeDescriptorsIsAccepted() throws {
        let h = try PackedQueueHarness(size: 4)
        let frame = QueueHarness.frame(100)
        h.ring.postTransmit(frame: frame, headerSize: 12, segments: [12, 30, 30, 40])
        XCTAssertEqual(h.dequeue(), [frame])
        XCTAssertFalse(h.queue.isBroken)
        XCTAssertFalse(h.queue.availWrapCounter)
    }

    func testNextFlagsThatNeverEndBreakTheRing() throws {
        let h = try PackedQueueHarness(size: 4)
        let avail = Ring.availableBits(wrap: true)
        for slot in 0..<4 { h.ring.writeDescriptor(slot, address: 0x10000, length: 64, id: 0, flags: avail | Ring.next) }
        XCTAssertEqual(h.dequeue(), [])
        XCTAssertTrue(h.queue.isBroken)
        XCTAssertEqual(h.stats.ringErrors, 1)
        XCTAssertFalse(h.queue.hasAvailableBuffers())
        XCTAssertEqual(h.ring.takeUsed().count, 0)
    }

    private func assertMalformed(_ h: PackedQueueHarness, slots: UInt16, file: StaticString = #filePath, line: UInt = #line) {
        let good = QueueHarness.frame(60, seed: 9)
        h.ring.postTransmit(frame: good, headerSize: 12)
        XCTAssertEqual(h.dequeue(), [], "the burst ends at the invalid buffer", file: file, line: line)
        XCTAssertEqual(h.stats.dropsMalformedDescriptor, 1, file: file, line: line)
        XCTAssertEqual(h.ring.takeUsed().map(\.length), [0], "the bad buffer is given back", file: file, line: line)
        XCTAssertEqual(h.queue.lastAvailIndex, slots, "the bad buffer's slots are consumed", file: file, line: line)
        XCTAssertEqual(h.dequeue(), [good], "the next buffer flows in the next burst", file: file, line: line)
        XCTAssertEqual(h.ring.takeUsed().map(\.length), [0], file: file, line: line)
        XCTAssertEqual(h.queue.lastAvailIndex, slots + 1, file: file, line: line)
        XCTAssertFalse(h.queue.isBroken, file: file, line: line)
    }

    func testZeroLengthDescriptorIsMalformed() throws {
        let h = try PackedQueueHarness()
        h.ring.postChain([(0x10000, 40), (0x10100, 0), (0x10200, 40)], writable: false)
        assertMalformed(h, slots: 3)
    }

    func testDescriptorOutsideEveryRegionIsMalformed() throws {
        let h = try PackedQueueHarness()
        h.ring.postChain([(0x10000, 20), (1 << 40, 60)], writable: false)
        assertMalformed(h, slots: 2)
    }

    func testDescriptorCrossingTwoRegionsIsMalformed() throws {
        let fixture = try GuestMemoryFixture.twoAdjacentRegions()
        let h = try PackedQueueHarness(fixture: fixture)
        h.ring.postChain([((1 << 20) - 30, 80)], writable: false)
        assertMalformed(h, slots: 1)
    }

    func testDescriptorLengthAllOnesIsMalformed() throws {
        let h = try PackedQueueHarness()
        h.ring.postChain([(0x10000, Int(UInt32.max))], writable: false)
        assertMalformed(h, slots: 1)
    }

    func testWriteOnlyBufferInTransmitChainIsMalformed() throws {
        let h = try PackedQueueHarness()
        h.ring.postChain([(0x10000, 80)], writable: true)
        assertMalformed(h, slots: 1)
    }

    func testTotalChainLengthOver4GiBIsMalformed() throws {
        let fixture = try GuestMemoryFixture(regions: [.init(guestPhysicalAddress: 0, size: 1 << 20),
                                                       .init(guestPhysicalAddress: 1 << 32, size: 3 << 30)])
        let h = try PackedQueueHarness(fixture: fixture)
        h.ring.postChain([(1 << 32, 3 << 30), (1 << 32, 3 << 30)], writable: false)
        assertMalformed(h, slots: 2)
    }

    func testIndirectWithoutNegotiatedFeatureIsMalformed() throws {
        let h = try PackedQueueHarness()
        h.ring.postTransmit(frame: QueueHarness.frame(60), headerSize: 12, indirect: true)
        assertMalformed(h, slots: 1)
    }

    private func postIndirect(_ h: PackedQueueHarness, tableLength: UInt32, tableAddress: UInt64? = nil, flags: UInt16 = Ring.indirect,
                              entries: [(UInt64, UInt32, UInt16)] = [(0x20000, 72, 0)]) {
        let table = tableAddress ?? h.ring.allocateBuffer(max(16, Int(tableLength)))
        if tableAddress == nil {
            for (i, entry) in entries.enumerated() {
                h.ring.writeDescriptor(at: table + 16 * UInt64(i), address: entry.0, length: entry.1, id: 0, flags: entry.2)
            }
        }
        let slot = h.ring.nextAvail
        h.ring.postChain([(table, Int(tableLength))], writable: false)
        // Rewrite the head with the flags under test (keeping it available).
        h.ring.writeDescriptor(slot, address: table, length: tableLength, id: h.ring.readDescriptor(slot).id,
                               flags: flags | Ring.availableBits(wrap: true))
    }

    func testIndirectLengthNotMultipleOf16IsMalformed() throws {
        let h = try PackedQueueHarness(features: Self.indirect)
        postIndirect(h, tableLength: 24)
        assertMalformed(h, slots: 1)
    }

    func testIndirectTableWithMoreEntriesThanRingSizeIsMalformed() throws {
        let h = try PackedQueueHarness(features: Self.indirect, size: 4)
        postIndirect(h, tableLength: 16 * 5)
        assertMalformed(h, slots: 1)
    }

    func testIndirectInsideIndirectIsMalformed() throws {
        let h = try PackedQueueHarness(features: Self.indirect)
        postIndirect(h, tableLength: 16, entries: [(0x20000, 16, Ring.indirect)])
        assertMalformed(h, slots: 1)
    }

    func testIndirectTogetherWithNextIsMalformed() throws {
        let h = try PackedQueueHarness(features: Self.indirect)
        // INDIRECT|NEXT in slot 0, then a plain descriptor in slot 1 that ends the chain.
        let table = h.ring.allocateBuffer(16)
        h.ring.writeDescriptor(at: table, address: 0x20000, length: 72, id: 0, flags: 0)
        h.ring.postChain([(table, 16), (0x20000, 72)], writable: false)
        h.ring.writeDescriptor(0, address: table, length: 16, id: 0, flags: Ring.indirect | Ring.next | Ring.availableBits(wrap: true))
        assertMalformed(h, slots: 2)
    }

    func testIndirectAfterDirectDescriptorIsMalformed() throws {
        let h = try PackedQueueHarness(features: Self.indirect)
        let table = h.ring.allocateBuffer(16)
        h.ring.writeDescriptor(at: table, address: 0x20000, length: 72, id: 0, flags: 0)
        h.ring.postChain([(0x20000, 12), (table, 16)], writable: false)
        h.ring.writeDescriptor(1, address: table, length: 16, id: 0, flags: Ring.indirect | Ring.availableBits(wrap: true))
        assertMalformed(h, slots: 2)
    }

    func testUnmappedIndirectTableIsMalformed() throws {
        let h = try PackedQueueHarness(features: Self.indirect)
        postIndirect(h, tableLength: 32, tableAddress: 1 << 40)
        assertMalformed(h, slots: 1)
    }

    func testIndirectTableCrossingRegionsIsMalformed() throws {
        let fixture = try GuestMemoryFixture.twoAdjacentRegions(firstSize: 0x80000, secondSize: 0x80000)
        let h = try PackedQueueHarness(features: Self.indirect, fixture: fixture)
        let data = h.ring.allocateBuffer(80)
        // A well-formed two-entry table, placed across the boundary.
        let table: UInt64 = 0x80000 - 16
        h.ring.writeDescriptor(at: table, address: data, length: 40, id: 0, flags: 0)
        h.ring.writeDescriptor(at: table + 16, address: data + 40, length: 40, id: 0, flags: 0)
        postIndirect(h, tableLength: 32, tableAddress: table)
        assertMalformed(h, slots: 1)
    }

    func testFrameShorterThan14BytesIsDropped() throws {
        let h = try PackedQueueHarness()
        h.ring.postTransmit(frame: QueueHarness.frame(13), headerSize: 12)
        h.ring.postTransmit(frame: [], headerSize: 12)
        XCTAssertEqual(h.dequeue(), [])
        XCTAssertEqual(h.stats.dropsTooShort, 2)
        XCTAssertEqual(h.ring.takeUsed().count, 2)
    }

    func testGuestRewritingTheRingAfterTheBurstDoesNotMatter() throws {
        let h = try PackedQueueHarness()
        let frame = QueueHarness.frame(60)
        h.ring.postTransmit(frame: frame, headerSize: 12)
        XCTAssertEqual(h.dequeue(), [frame])
        // The used descriptor is in slot 0; a guest that marks it available again with the
        // old wrap is not re-read (our wrap counter moved on only after a lap).
        XCTAssertEqual(h.ring.readDescriptor(0).flags & (Ring.availFlag | Ring.usedFlag), Ring.availFlag | Ring.usedFlag)
        XCTAssertEqual(h.dequeue(), [])
    }

    // MARK: Frames

    func testChainShorterThanNetHeaderIsDropped() throws {
        let h = try PackedQueueHarness()
        h.ring.postChain([(0x10000, 8)], writable: false)
        XCTAssertEqual(h.dequeue(), [])
        XCTAssertEqual(h.stats.dropsTooShort, 1)
        XCTAssertEqual(h.ring.takeUsed().count, 1)
    }

    func testFrameLongerThanBufferCapacityIsDropped() throws {
        let h = try PackedQueueHarness(bufferCapacity: 256)
        h.ring.postTransmit(frame: QueueHarness.frame(300), headerSize: 12, segments: [112, 100, 100])
        let good = QueueHarness.frame(60)
        h.ring.postTransmit(frame: good, headerSize: 12)
        XCTAssertEqual(h.dequeue(), [good])
        XCTAssertEqual(h.stats.dropsTooLarge, 1)
        XCTAssertEqual(h.queue.lastAvailIndex, 4)
    }

    func testOffloadNotNegotiatedIsDropped() throws {
        let h = try PackedQueueHarness()
        let header = VirtioNetHeader(flags: VirtioNetHeader.flagNeedsChecksum, gsoType: 0, headerLength: 0,
                                     gsoSize: 0, checksumStart: 34, checksumOffset: 16, bufferCount: 0)
        h.ring.postTransmit(frame: QueueHarness.frame(100), header: header, headerSize: 12)
        XCTAssertEqual(h.dequeue(), [])
        XCTAssertEqual(h.stats.dropsMalformedHeader, 1)
    }
}
