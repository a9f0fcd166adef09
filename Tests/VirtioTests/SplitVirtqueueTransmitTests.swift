import TestSupport
import XCTest
@testable import Virtio

/// Guest transmit (the switch dequeues): functional behaviour and every hostile ring case.
final class SplitVirtqueueTransmitTests: XCTestCase {
    private typealias Ring = SplitGuestDriverRing

    // MARK: Functional

    func testTransmitWithTwelveByteHeader() throws {
        let h = try QueueHarness(features: QueueHarness.modern | VirtioNetFeature.csum.mask | VirtioNetFeature.hostTso4.mask)
        let frame = QueueHarness.frame(1000)
        let header = VirtioNetHeader(flags: VirtioNetHeader.flagNeedsChecksum, gsoType: VirtioNetHeader.gsoTCPv4, headerLength: 54,
                                     gsoSize: 536, checksumStart: 34, checksumOffset: 16, bufferCount: 0)
        let head = h.ring.postTransmit(frame: frame, header: header, headerSize: 12)
        XCTAssertTrue(h.queue.hasAvailableBuffers())
        XCTAssertEqual(h.dequeue(), [frame])
        XCTAssertEqual(h.buffers[0].header, header)
        XCTAssertEqual(h.ring.takeUsedEntries().map { [$0.id, $0.length] }, [[UInt32(head), 0]])
        XCTAssertEqual(h.queue.lastAvailIndex, 1)
        XCTAssertEqual(h.queue.lastUsedIndex, 1)
        XCTAssertEqual(h.queue.currentUsedIndex(), 1)
        XCTAssertFalse(h.queue.hasAvailableBuffers())
        XCTAssertEqual(h.stats.packets, 1)
        XCTAssertEqual(h.stats.bytes, 1000)
        XCTAssertEqual(h.dequeue(), [])
    }

    func testTransmitWithTenByteHeader() throws {
        let h = try QueueHarness(features: QueueHarness.legacy)
        let frames = [QueueHarness.frame(60, seed: 1), QueueHarness.frame(1514, seed: 2), QueueHarness.frame(14, seed: 3)]
        for frame in frames { h.ring.postTransmit(frame: frame, headerSize: 10) }
        XCTAssertEqual(h.dequeue(), frames)
        XCTAssertEqual(h.ring.takeUsedEntries().count, 3)
    }

    func testBurstStopsAtMaxCountAndResumes() throws {
        let h = try QueueHarness()
        let frames = (0..<10).map { QueueHarness.frame(64, seed: UInt8($0)) }
        for frame in frames { h.ring.postTransmit(frame: frame, headerSize: 12) }
        XCTAssertEqual(h.dequeue(max: 4), Array(frames[0..<4]))
        XCTAssertEqual(h.queue.lastAvailIndex, 4)
        XCTAssertEqual(h.dequeue(max: 32), Array(frames[4...]))
        XCTAssertEqual(h.queue.lastAvailIndex, 10)
    }

    func testRingIndicesWrapAround() throws {
        let h = try QueueHarness(size: 4)
        for round in 0..<40 {
            let frame = QueueHarness.frame(60, seed: UInt8(round))
            h.ring.postTransmit(frame: frame, headerSize: 12)
            h.ring.postTransmit(frame: frame, headerSize: 12)
            XCTAssertEqual(h.dequeue(), [frame, frame])
        }
        XCTAssertEqual(h.queue.lastAvailIndex, 80)
        XCTAssertEqual(h.ring.takeUsedEntries().count, 80)
    }

    func testStartsFromGivenAvailIndex() throws {
        let fixture = try GuestMemoryFixture()
        let ring = try SplitGuestDriverRing(fixture: fixture, size: 8)
        for _ in 0..<65533 { ring.setAvailIndex(ring.availIndex &+ 1) }  // as if 65533 were consumed
        let queue = SplitVirtqueue(layout: try ring.layout(),
                                   settings: NegotiatedRingSettings(memory: fixture.memory, negotiatedFeatures: QueueHarness.modern),
                                   lastAvailIndex: 65533)
        for _ in 0..<5 { ring.postTransmit(frame: QueueHarness.frame(60), headerSize: 12) }
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: 2048 * 8, alignment: 16)
        defer { buffer.deallocate() }
        var packets = (0..<8).map { PacketBuffer(data: buffer + $0 * 2048, capacity: 2048) }
        XCTAssertEqual(queue.dequeueBurst(into: &packets, maxCount: 8), 5)
        XCTAssertEqual(queue.lastAvailIndex, 2)  // wrapped past 65535
    }

    func testIndirectDescriptorsTransmit() throws {
        let h = try QueueHarness(features: QueueHarness.modern | VirtioNetFeature.indirectDesc.mask)
        let frame = QueueHarness.frame(300)
        h.ring.postTransmit(frame: frame, headerSize: 12, segments: [12, 100, 1, 199], indirect: true)
        XCTAssertEqual(h.dequeue(), [frame])
        XCTAssertEqual(h.stats.dropsMalformedDescriptor, 0)
    }

    func testHeaderSplitAcrossSeveralDescriptorsWorks() throws {
        let h = try QueueHarness(size: 32)  // 18 descriptors in flight
        let frame = QueueHarness.frame(100)
        let header = VirtioNetHeader(flags: VirtioNetHeader.flagDataValid, headerLength: 0x1234, gsoSize: 0x5678)
        h.ring.postTransmit(frame: frame, header: header, headerSize: 12, segments: Array(repeating: 1, count: 12) + [100])
        h.ring.postTransmit(frame: frame, header: header, headerSize: 12, segments: [5, 7 + 40, 60])
        h.ring.postTransmit(frame: frame, header: header, headerSize: 12, segments: [3, 9, 100])
        XCTAssertEqual(h.dequeue(), [frame, frame, frame])
        for i in 0..<3 { XCTAssertEqual(h.buffers[i].header, header) }
    }

    func testChainOfExactlyRingSizeDescriptorsIsAccepted() throws {
        let h = try QueueHarness(size: 16)
        let frame = QueueHarness.frame(16 * 4 - 12)
        h.ring.postTransmit(frame: frame, headerSize: 12, segments: Array(repeating: 4, count: 16))
        XCTAssertEqual(h.dequeue(), [frame])
    }

    // MARK: Ring indices

    func testAvailIndexMoreThanRingSizeAheadIsRejected() throws {
        let h = try QueueHarness(size: 16)
        for _ in 0..<4 { h.ring.postTransmit(frame: QueueHarness.frame(60), headerSize: 12) }
        h.ring.setAvailIndex(17)
        XCTAssertEqual(h.dequeue(), [])
        XCTAssertEqual(h.queue.lastAvailIndex, 0, "nothing may be consumed from a broken ring")
        XCTAssertEqual(h.ring.usedIndex, 0)
        XCTAssertTrue(h.queue.isBroken)
        XCTAssertEqual(h.stats.ringErrors, 1)
        // It stays refused (no busy loop of errors, no processing).
        h.ring.setAvailIndex(4)
        XCTAssertEqual(h.dequeue(), [])
        XCTAssertFalse(h.queue.hasAvailableBuffers())
        XCTAssertEqual(h.stats.ringErrors, 1)
    }

    func testAvailIndexExactlyRingSizeAheadIsAccepted() throws {
        let h = try QueueHarness(size: 4)
        for _ in 0..<4 { h.ring.postTransmit(frame: QueueHarness.frame(60), headerSize: 12) }
        XCTAssertEqual(h.dequeue().count, 4)
        XCTAssertFalse(h.queue.isBroken)
    }

    func testHeadIndexAtOrAboveRingSizeIsSkipped() throws {
        let h = try QueueHarness(size: 16)
        h.ring.writeAvailSlot(0, head: 16)
        h.ring.writeAvailSlot(1, head: 0xffff)
        h.ring.setAvailIndex(2)
        let good = h.ring.postTransmit(frame: QueueHarness.frame(60), headerSize: 12)
        // Each bad head ends its burst; the good chain after them still flows.
        XCTAssertEqual(h.dequeue().count, 0)
        XCTAssertEqual(h.dequeue().count, 0)
        XCTAssertEqual(h.dequeue().count, 1)
        XCTAssertEqual(h.stats.invalidHeads, 2)
        XCTAssertEqual(h.queue.lastAvailIndex, 3)
        // No used entry may name a head that does not exist.
        XCTAssertEqual(h.ring.takeUsedEntries().map(\.id), [UInt32(good)])
    }

    /// One-descriptor chains take a shorter path than longer chains; a burst mixing them
    /// keeps order, and a one-descriptor chain reaching past its region is refused.
    func testBurstMixingOneDescriptorAndLongerChains() throws {
        let fixture = try GuestMemoryFixture.twoAdjacentRegions(firstSize: 0x80000, secondSize: 0x80000)
        let h = try QueueHarness(fixture: fixture)
        let frames = (0..<3).map { QueueHarness.frame(80 + 10 * $0, seed: UInt8($0)) }
        h.ring.postTransmit(frame: frames[0], headerSize: 12)
        h.ring.postTransmit(frame: frames[1], headerSize: 12, segments: [12, 30, 60])
        h.ring.publish(head: h.ring.postChain([(0x80000 - 100, 200)], writable: false, indirect: false))
        h.ring.postTransmit(frame: frames[2], headerSize: 12)
        XCTAssertEqual(h.dequeue(), Array(frames[0...1]), "the burst ends at the refused chain")
        XCTAssertEqual(h.dequeue(), [frames[2]])
        XCTAssertEqual(h.stats.dropsMalformedDescriptor, 1)
        XCTAssertEqual(h.ring.takeUsedEntries().count, 4)
    }

    /// finishBurst records the counters without testing them: only bursts that took something
    /// may get there, or `bursts` would count empty polls.
    func testEmptyPollsAreNotCountedAsBursts() throws {
        let h = try QueueHarness()
        for _ in 0..<3 { XCTAssertEqual(h.dequeue(), []) }
        XCTAssertEqual(h.stats.bursts, 0)
        h.ring.postTransmit(frame: QueueHarness.frame(60), headerSize: 12)
        XCTAssertEqual(h.dequeue().count, 1)
        XCTAssertEqual(h.dequeue(), [])
        XCTAssertEqual(h.stats.bursts, 1)
    }

    func testSameHeadSubmittedTwiceIsTakenOnce() throws {
        let h = try QueueHarness()
        let head = h.ring.postTransmit(frame: QueueHarness.frame(60), headerSize: 12)
        h.ring.publish(head: head)
        XCTAssertEqual(h.dequeue().count, 1)
        XCTAssertEqual(h.stats.invalidHeads, 1)
        XCTAssertEqual(h.ring.takeUsedEntries().map(\.id), [UInt32(head)], "a head must not be returned twice")
        XCTAssertEqual(h.queue.lastAvailIndex, 2)
    }

    func testMoreBuffersInFlightThanDescriptorsAreNotReturnedTwice() throws {
        // A full ring of avail entries that all name the same few descriptors.
        let h = try QueueHarness(size: 8)
        let a = h.ring.postTransmit(frame: QueueHarness.frame(60, seed: 1), headerSize: 12)
        let b = h.ring.postTransmit(frame: QueueHarness.frame(60, seed: 2), headerSize: 12)
        for i in 0..<6 { h.ring.publish(head: i % 2 == 0 ? a : b) }
        XCTAssertEqual(h.dequeue().count, 2)
        XCTAssertEqual(h.stats.invalidHeads, 1, "the burst ends at the first repeated head")
        XCTAssertEqual(h.ring.takeUsedEntries().map(\.id), [UInt32(a), UInt32(b)])
    }

    // MARK: Chains

    private func postRaw(_ h: QueueHarness, _ descriptors: [(index: Int, address: UInt64, length: UInt32, flags: UInt16, next: UInt16)],
                         head: UInt16 = 0) {
        for d in descriptors { h.ring.writeDescriptor(d.index, address: d.address, length: d.length, flags: d.flags, next: d.next) }
        h.ring.publish(head: head)
    }

    /// After a hostile chain was published at head 0: it must be consumed with a length-0
    /// used entry and counted, and the ring must keep working for a good frame afterwards.
    private func assertMalformed(_ h: QueueHarness, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(h.dequeue(), [], file: file, line: line)
        XCTAssertEqual(h.stats.dropsMalformedDescriptor, 1, file: file, line: line)
        let used = h.ring.takeUsedEntries()
        XCTAssertEqual(used.map { [$0.id, $0.length] }, [[0, 0]], file: file, line: line)
        let good = QueueHarness.frame(60, seed: 9)
        h.ring.postTransmit(frame: good, headerSize: h.headerSize)
        XCTAssertEqual(h.dequeue(), [good], file: file, line: line)
        XCTAssertEqual(h.stats.dropsMalformedDescriptor, 1, file: file, line: line)
    }

    private func goodData(_ h: QueueHarness, _ length: Int = 80) -> UInt64 {
        let address = h.ring.allocateBuffer(length)
        h.fixture.write([UInt8](repeating: 0, count: 12) + QueueHarness.frame(length - 12), at: address)
        return address
    }

    func testNextIndexAtOrAboveRingSizeIsMalformed() throws {
        let h = try QueueHarness(size: 16)
        let data = goodData(h)
        XCTAssertEqual(data, h.ring.dataAddress)
        // The fixture puts the avail ring right after the table, so "descriptor 16" would be
        // read from avail flags/idx/ring[0...5]. Make it look like a valid 40-byte buffer at
        // `data`, so only the index check can refuse the chain.
        postRaw(h, [(0, data, 40, Ring.next, 16)])  // publishes ring[0] = 0 and idx = 1
        XCTAssertEqual(h.ring.availAddress, h.ring.descriptorTableAddress + 16 * 16)
        XCTAssertEqual(data, 0x10000)  // = flags 0 | idx 1 << 16 | ring[0] 0 << 32 | ring[1] 0 << 48
        h.ring.writeAvailSlot(2, head: 40)  // len low
        h.ring.writeAvailSlot(3, head: 0)   // len high
        h.ring.writeAvailSlot(4, head: 0)   // flags
        assertMalformed(h)
    }

    func testLoopingChainIsMalformed() throws {
        let h = try QueueHarness(size: 16)
        let data = goodData(h)
        postRaw(h, [(0, data, 20, Ring.next, 1), (1, data + 20, 20, Ring.next, 0)])
        _ = h.ring.allocateDescriptor(); _ = h.ring.allocateDescriptor()
        assertMalformed(h)
    }

    func testChainLongerThanRingSizeIsMalformed() throws {
        // Every descriptor in one cycle: the walk must stop after ring-size hops.
        let h = try QueueHarness(size: 16)
        let data = goodData(h, 200)
        postRaw(h, (0..<16).map { ($0, data, 4, Ring.next, UInt16(($0 + 1) % 16)) })
        assertMalformed(h)
    }

    func testTotalChainLengthOver4GiBIsMalformed() throws {
        // Sparse memfd regions: the pages are never touched past the first few bytes.
        let fixture = try GuestMemoryFixture(regions: [.init(guestPhysicalAddress: 0, size: 0xC000_0000)])
        let h = try QueueHarness(fixture: fixture)
        let data = goodData(h)
        postRaw(h, [(0, data, 0x8000_0000, Ring.next, 1), (1, data, 0x7fff_ffff, Ring.next, 2), (2, data, 2, 0, 0)])
        for _ in 0..<3 { _ = h.ring.allocateDescriptor() }
        assertMalformed(h)
        XCTAssertEqual(h.stats.dropsTooLarge, 0, "must be refused as malformed before any size decision")
    }

    func testZeroLengthDescriptorIsMalformed() throws {
        let h = try QueueHarness()
        let data = goodData(h)
        postRaw(h, [(0, data, 40, Ring.next, 1), (1, data + 40, 0, 0, 0)])
        _ = h.ring.allocateDescriptor(); _ = h.ring.allocateDescriptor()
        assertMalformed(h)
    }

    func testDescriptorLengthAllOnesIsMalformed() throws {
        let h = try QueueHarness()
        let data = goodData(h)
        postRaw(h, [(0, data, 0xffff_ffff, 0, 0)])
        _ = h.ring.allocateDescriptor()
        assertMalformed(h)
    }

    func testDescriptorOutsideEveryRegionIsMalformed() throws {
        let h = try QueueHarness()
        postRaw(h, [(0, 0x4000_0000, 64, 0, 0)])
        _ = h.ring.allocateDescriptor()
        assertMalformed(h)
    }

    func testDescriptorCrossingTwoRegionsIsMalformed() throws {
        let fixture = try GuestMemoryFixture.twoAdjacentRegions(firstSize: 0x80000, secondSize: 0x80000)
        let h = try QueueHarness(fixture: fixture)
        fixture.fill(0, at: 0x80000 - 32, count: 64)
        postRaw(h, [(0, 0x80000 - 32, 64, 0, 0)])
        _ = h.ring.allocateDescriptor()
        assertMalformed(h)
    }

    func testWriteOnlyBufferInTransmitChainIsMalformed() throws {
        let h = try QueueHarness()
        let data = goodData(h)
        postRaw(h, [(0, data, 40, Ring.next, 1), (1, data + 40, 40, Ring.write, 0)])
        _ = h.ring.allocateDescriptor(); _ = h.ring.allocateDescriptor()
        assertMalformed(h)
    }

    // MARK: Indirect tables

    private func indirectHarness(size: Int = 16) throws -> QueueHarness {
        try QueueHarness(features: QueueHarness.modern | VirtioNetFeature.indirectDesc.mask, size: size)
    }

    /// Writes a two-entry indirect table of good data; returns its address.
    private func goodTable(_ h: QueueHarness, entries: Int = 2) -> UInt64 {
        let data = goodData(h, 40 * entries)
        let table = h.ring.allocateBuffer(16 * entries)
        for i in 0..<entries {
            h.ring.writeDescriptor(at: table + 16 * UInt64(i), address: data + 40 * UInt64(i), length: 40,
                                   flags: i == entries - 1 ? 0 : Ring.next, next: UInt16(i + 1))
        }
        return table
    }

    func testIndirectTableIsAcceptedAsControl() throws {
        let h = try indirectHarness()
        postRaw(h, [(0, goodTable(h), 32, Ring.indirect, 0)])
        _ = h.ring.allocateDescriptor()
        XCTAssertEqual(h.dequeue().count, 1)
        XCTAssertEqual(h.buffers[0].length, 68)
    }

    func testIndirectWithoutNegotiatedFeatureIsMalformed() throws {
        let h = try QueueHarness()
        postRaw(h, [(0, goodTable(h), 32, Ring.indirect, 0)])
        _ = h.ring.allocateDescriptor()
        assertMalformed(h)
    }

    func testIndirectLengthNotMultipleOf16IsMalformed() throws {
        let h = try indirectHarness()
        // One complete entry: without the check, 31 / 16 = 1 entry would be accepted.
        postRaw(h, [(0, goodTable(h, entries: 1), 31, Ring.indirect, 0)])
        _ = h.ring.allocateDescriptor()
        assertMalformed(h)
    }

    func testIndirectTableWithMoreEntriesThanRingSizeIsMalformed() throws {
        let h = try indirectHarness(size: 16)
        postRaw(h, [(0, goodTable(h, entries: 17), 16 * 17, Ring.indirect, 0)])
        _ = h.ring.allocateDescriptor()
        assertMalformed(h)
    }

    func testIndirectTableWithMoreThan65536EntriesIsMalformed() throws {
        let h = try indirectHarness(size: 16)
        postRaw(h, [(0, goodTable(h), 16 * 65537, Ring.indirect, 0)])
        _ = h.ring.allocateDescriptor()
        assertMalformed(h)
    }

    func testLoopInsideIndirectTableIsMalformed() throws {
        let h = try indirectHarness()
        let table = goodTable(h)
        h.ring.writeDescriptor(at: table + 16, address: goodData(h), length: 40, flags: Ring.next, next: 0)
        postRaw(h, [(0, table, 32, Ring.indirect, 0)])
        _ = h.ring.allocateDescriptor()
        assertMalformed(h)
    }

    func testIndirectInsideIndirectIsMalformed() throws {
        let h = try indirectHarness()
        let inner = goodTable(h)
        let outer = h.ring.allocateBuffer(16)
        h.ring.writeDescriptor(at: outer, address: inner, length: 32, flags: Ring.indirect)
        postRaw(h, [(0, outer, 16, Ring.indirect, 0)])
        _ = h.ring.allocateDescriptor()
        assertMalformed(h)
    }

    func testIndirectTogetherWithNextIsMalformed() throws {
        let h = try indirectHarness()
        let data = goodData(h)
        postRaw(h, [(0, goodTable(h), 32, Ring.indirect | Ring.next, 1), (1, data, 20, 0, 0)])
        _ = h.ring.allocateDescriptor(); _ = h.ring.allocateDescriptor()
        assertMalformed(h)
    }

    func testIndirectAfterDirectDescriptorIsMalformed() throws {
        let h = try indirectHarness()
        let data = goodData(h)
        postRaw(h, [(0, data, 20, Ring.next, 1), (1, goodTable(h), 32, Ring.indirect, 0)])
        _ = h.ring.allocateDescriptor(); _ = h.ring.allocateDescriptor()
        assertMalformed(h)
    }

    func testUnmappedIndirectTableIsMalformed() throws {
        let h = try indirectHarness()
        postRaw(h, [(0, 0x4000_0000, 32, Ring.indirect, 0)])
        _ = h.ring.allocateDescriptor()
        assertMalformed(h)
    }

    func testIndirectTableCrossingRegionsIsMalformed() throws {
        let fixture = try GuestMemoryFixture.twoAdjacentRegions(firstSize: 0x80000, secondSize: 0x80000)
        let h = try QueueHarness(features: QueueHarness.modern | VirtioNetFeature.indirectDesc.mask, fixture: fixture)
        let data = goodData(h)
        // A well-formed two-entry table, placed across the boundary.
        let table: UInt64 = 0x80000 - 16
        h.ring.writeDescriptor(at: table, address: data, length: 40, flags: Ring.next, next: 1)
        h.ring.writeDescriptor(at: table + 16, address: data + 40, length: 40)
        postRaw(h, [(0, table, 32, Ring.indirect, 0)])
        _ = h.ring.allocateDescriptor()
        assertMalformed(h)
    }

    // MARK: Sizes and headers

    func testChainShorterThanNetHeaderIsDropped() throws {
        let h = try QueueHarness()
        let data = goodData(h)
        postRaw(h, [(0, data, 11, 0, 0)])
        _ = h.ring.allocateDescriptor()
        XCTAssertEqual(h.dequeue(), [])
        XCTAssertEqual(h.stats.dropsTooShort, 1)
        XCTAssertEqual(h.ring.takeUsedEntries().map { [$0.id, $0.length] }, [[0, 0]])
    }

    func testFrameShorterThan14BytesIsDropped() throws {
        let h = try QueueHarness()
        h.ring.postTransmit(frame: QueueHarness.frame(13), headerSize: 12)
        h.ring.postTransmit(frame: [], headerSize: 12)
        XCTAssertEqual(h.dequeue(), [])
        XCTAssertEqual(h.stats.dropsTooShort, 2)
        XCTAssertEqual(h.ring.takeUsedEntries().count, 2)
    }

    func testFrameLongerThanBufferCapacityIsDropped() throws {
        let h = try QueueHarness(bufferCapacity: 1514)
        h.ring.postTransmit(frame: QueueHarness.frame(1515), headerSize: 12, segments: [1000, 527])
        let fits = QueueHarness.frame(1514)
        h.ring.postTransmit(frame: fits, headerSize: 12)
        XCTAssertEqual(h.dequeue(), [fits])
        XCTAssertEqual(h.stats.dropsTooLarge, 1)
        XCTAssertEqual(h.ring.takeUsedEntries().count, 2)
    }

    func testChecksumOffsetOutsideFrameIsDropped() throws {
        let h = try QueueHarness(features: QueueHarness.modern | VirtioNetFeature.csum.mask)
        let bad = VirtioNetHeader(flags: VirtioNetHeader.flagNeedsChecksum, checksumStart: 50, checksumOffset: 9)
        h.ring.postTransmit(frame: QueueHarness.frame(60), header: bad, headerSize: 12)
        let edge = VirtioNetHeader(flags: VirtioNetHeader.flagNeedsChecksum, checksumStart: 50, checksumOffset: 8)
        h.ring.postTransmit(frame: QueueHarness.frame(60), header: edge, headerSize: 12)
        XCTAssertEqual(h.dequeue().count, 1)
        XCTAssertEqual(h.stats.dropsMalformedHeader, 1)
    }

    func testOffloadNotNegotiatedIsDropped() throws {
        let h = try QueueHarness()  // no CSUM, no HOST_TSO4
        h.ring.postTransmit(frame: QueueHarness.frame(60), header: VirtioNetHeader(flags: VirtioNetHeader.flagNeedsChecksum), headerSize: 12)
        h.ring.postTransmit(frame: QueueHarness.frame(60), header: VirtioNetHeader(gsoType: VirtioNetHeader.gsoTCPv4, gsoSize: 1448), headerSize: 12)
        h.ring.postTransmit(frame: QueueHarness.frame(60), header: VirtioNetHeader(gsoType: 0x42, gsoSize: 1448), headerSize: 12)
        XCTAssertEqual(h.dequeue(), [])
        XCTAssertEqual(h.stats.dropsMalformedHeader, 3)
    }

    func testGsoWithoutSegmentSizeIsDropped() throws {
        let h = try QueueHarness(features: QueueHarness.modern | VirtioNetFeature.csum.mask | VirtioNetFeature.hostTso4.mask)
        let header = VirtioNetHeader(flags: VirtioNetHeader.flagNeedsChecksum, gsoType: VirtioNetHeader.gsoTCPv4, gsoSize: 0,
                                     checksumStart: 34, checksumOffset: 16)
        h.ring.postTransmit(frame: QueueHarness.frame(100), header: header, headerSize: 12)
        XCTAssertEqual(h.dequeue(), [])
        XCTAssertEqual(h.stats.dropsMalformedHeader, 1)
    }

    func testGsoSegmentSizeOrHeaderLengthBeyondTheFrameIsDropped() throws {
        let h = try QueueHarness(features: QueueHarness.modern | VirtioNetFeature.csum.mask | VirtioNetFeature.hostTso4.mask)
        func header(gsoSize: UInt16, headerLength: UInt16) -> VirtioNetHeader {
            VirtioNetHeader(flags: VirtioNetHeader.flagNeedsChecksum, gsoType: VirtioNetHeader.gsoTCPv4, headerLength: headerLength,
                            gsoSize: gsoSize, checksumStart: 34, checksumOffset: 16)
        }
        h.ring.postTransmit(frame: QueueHarness.frame(100), header: header(gsoSize: 100, headerLength: 54), headerSize: 12)
        h.ring.postTransmit(frame: QueueHarness.frame(100), header: header(gsoSize: 40, headerLength: 101), headerSize: 12)
        h.ring.postTransmit(frame: QueueHarness.frame(100), header: header(gsoSize: 40, headerLength: 100), headerSize: 12)
        XCTAssertEqual(h.dequeue().count, 1, "only the last, whose segment size and hdr_len lie within the frame")
        XCTAssertEqual(h.stats.dropsMalformedHeader, 2)
    }
}
