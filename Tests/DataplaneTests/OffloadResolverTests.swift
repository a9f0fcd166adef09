import XCTest
import Virtio
@testable import Dataplane

/// Software checksum completion and segmentation, checked against frames built
/// independently (ReferenceFrames), and the resolver's pass/complete/segment/drop choices.
final class OffloadResolverTests: XCTestCase {
    typealias R = ReferenceFrames
    static let everything = OffloadResolver.everyGuestOffload
    static let checksumOnly = VirtioNetFeature.guestCsum.mask

    /// Frames and headers the resolver handed on, and its totals.
    struct Outcome {
        var frames: [[UInt8]] = []
        var headers: [VirtioNetHeader] = []
        var batches: [Int] = []
        var totals = OffloadResolver.Totals()
    }

    /// Runs `frames` (with their headers) through a resolver for a destination accepting `accepted`.
    func resolve(_ frames: [([UInt8], VirtioNetHeader)], accepted: UInt64, deliver: Int? = nil) throws -> Outcome {
        let resolver = try OffloadResolver()
        let storage = frames.map { frame, _ in UnsafeMutableRawPointer.allocate(byteCount: max(frame.count, 1), alignment: 64) }
        defer { storage.forEach { $0.deallocate() } }
        var packets: [PacketBuffer] = []
        for (i, (frame, header)) in frames.enumerated() {
            frame.withUnsafeBytes { storage[i].copyMemory(from: $0.baseAddress!, byteCount: frame.count) }
            var packet = PacketBuffer(data: storage[i], capacity: 65_536, length: frame.count)
            packet.header = header
            packets.append(packet)
        }
        var outcome = Outcome()
        var totals = OffloadResolver.Totals()
        packets.withUnsafeBufferPointer { buffer in
            resolver.resolve(buffer.baseAddress!, count: buffer.count, accepted: accepted, totals: &totals) { batch, count in
                outcome.batches.append(count)
                for i in 0..<count {
                    outcome.frames.append(Array(UnsafeRawBufferPointer(start: batch[i].data, count: batch[i].length)))
                    outcome.headers.append(batch[i].header)
                }
                return deliver.map { min($0, count) } ?? count
            }
        }
        outcome.totals = totals
        // The caller's frames are never changed in place (a flooded frame is shared).
        for (i, (frame, _)) in frames.enumerated() {
            XCTAssertEqual(Array(UnsafeRawBufferPointer(start: storage[i], count: frame.count)), frame, "input \(i) untouched")
        }
        return outcome
    }

    // MARK: The checksum itself

    func testInternetChecksumMatchesTheTextbookLoopForEveryLengthAndAlignment() {
        var bytes = [UInt8](repeating: 0, count: 300)
        for i in bytes.indices { bytes[i] = UInt8(truncatingIfNeeded: i &* 131 &+ 17) }
        bytes[5] = 0xff; bytes[6] = 0xff; bytes[7] = 0xff  // carries
        bytes.withUnsafeBytes { raw in
            for start in 0..<9 {
                for count in [0, 1, 2, 3, 7, 8, 9, 15, 16, 17, 63, 64, 65, 255] {
                    let sum = InternetChecksum.add(raw.baseAddress! + start, count: count, to: 0)
                    var expected = R.checksum(Array(bytes[start..<start + count]))
                    if expected == 0 { expected = 0xffff }
                    XCTAssertEqual(UInt16(bigEndian: InternetChecksum.field(for: sum)), expected, "start \(start) count \(count)")
                }
            }
        }
    }

    func testCarriesOutOfThe64BitAccumulatorWrapAround() {
        let ones = [UInt8](repeating: 0xff, count: 4096)
        let sum = ones.withUnsafeBytes { InternetChecksum.add($0.baseAddress!, count: $0.count, to: UInt64.max - 5) }
        // All-ones words sum to negative zero; what matters is that nothing is lost: the
        // fold of (max - 5) + ones equals the fold of (max - 5) alone plus 0xffff's.
        XCTAssertEqual(InternetChecksum.fold(sum), InternetChecksum.fold(InternetChecksum.addWithCarry(UInt64.max - 5, 0xffff)))
    }

    // MARK: Partial checksums

    func testPartialChecksumsAreCompletedForADestinationWithoutGuestCsum() throws {
        for shape in [R.Shape(), R.Shape(ipv6: true), R.Shape(udp: true), R.Shape(ipv6: true, udp: true, vlan: true)] {
            for payloadLength in [0, 1, 2, 33, 1400] {
                let complete = R.frame(shape, payload: R.payload(payloadLength))
                var header = VirtioNetHeader(flags: VirtioNetHeader.flagNeedsChecksum)
                header.checksumStart = UInt16(R.transportOffset(shape))
                header.checksumOffset = UInt16(R.checksumOffset(shape))
                let outcome = try resolve([(R.partial(complete, shape), header)], accepted: 0)
                assertSameFrames(outcome.frames, [complete], "\(shape) payload \(payloadLength)")
                XCTAssertEqual(outcome.headers.map(\.isPlain), [true])
                XCTAssertEqual(outcome.totals.checksumsCompleted, 1)
            }
        }
    }

    func testPartialChecksumsPassUntouchedToADestinationWithGuestCsum() throws {
        let shape = R.Shape()
        let partial = R.partial(R.frame(shape, payload: R.payload(100)), shape)
        let header = VirtioNetHeader(flags: VirtioNetHeader.flagNeedsChecksum, checksumStart: 34, checksumOffset: 16)
        let outcome = try resolve([(partial, header)], accepted: Self.checksumOnly)
        assertSameFrames(outcome.frames, [partial])
        XCTAssertEqual(outcome.headers, [header])
        XCTAssertEqual(outcome.totals.checksumsCompleted, 0)
    }

    func testDataValidIsClearedOnlyForADestinationWithoutGuestCsum() throws {
        let frame = R.frame(R.Shape(), payload: R.payload(10))
        let header = VirtioNetHeader(flags: VirtioNetHeader.flagDataValid)
        XCTAssertEqual(try resolve([(frame, header)], accepted: 0).headers, [VirtioNetHeader()])
        XCTAssertEqual(try resolve([(frame, header)], accepted: Self.checksumOnly).headers, [header])
    }

    func testAChecksumFieldOutsideTheFrameIsDroppedAsMalformed() throws {
        let frame = R.frame(R.Shape(), payload: R.payload(10))
        let header = VirtioNetHeader(flags: VirtioNetHeader.flagNeedsChecksum, checksumStart: UInt16(frame.count - 1), checksumOffset: 0)
        let outcome = try resolve([(frame, header)], accepted: 0)
        XCTAssertEqual(outcome.frames.count, 0)
        XCTAssertEqual(outcome.totals.dropsMalformed, 1)
    }

    // MARK: Segmentation

    func testSuperFramesAreSegmentedExactlyAsANICWould() throws {
        let cases: [(R.Shape, Int, Int)] = [
            (R.Shape(), 4000, 1448),                 // 3 segments, short last
            (R.Shape(), 2896, 1448),                 // exact multiple
            (R.Shape(ipv6: true), 5001, 1000),       // odd last chunk
            (R.Shape(vlan: true), 3000, 999),        // odd segment size behind a VLAN tag
            (R.Shape(udp: true), 3000, 1200),        // UDP segmentation offload (USO)
            (R.Shape(ipv6: true, udp: true), 1300, 1200),
            (R.Shape(), 60_000, 1448),               // a full-size super-frame
        ]
        for (shape, payloadLength, segmentSize) in cases {
            let payload = R.payload(payloadLength, seed: UInt8(payloadLength & 0xff))
            let flags = R.tcpACK | R.tcpPSH | R.tcpFIN
            let superFrame = R.partial(R.frame(shape, payload: payload, sequence: 0xffff_f000, tcpFlags: flags), shape)
            let outcome = try resolve([(superFrame, R.gsoHeader(shape, segmentSize: segmentSize))], accepted: Self.checksumOnly)
            let expected = R.segments(shape, payload: payload, segmentSize: segmentSize, sequence: 0xffff_f000, tcpFlags: flags)
            assertSameFrames(outcome.frames, expected, "\(shape) \(payloadLength)/\(segmentSize)")
            XCTAssertTrue(outcome.headers.allSatisfy(\.isPlain))
            XCTAssertEqual(outcome.totals.framesSegmented, 1)
            XCTAssertEqual(outcome.totals.segments, UInt64(expected.count))
            XCTAssertEqual(outcome.batches, Self.batchSizes(expected.count), "at most one batch of slots at a time")
        }
    }

    func testECNSuperFramesKeepCWROnTheFirstSegmentOnly() throws {
        let shape = R.Shape()
        let payload = R.payload(3000)
        let flags = R.tcpACK | R.tcpCWR
        let superFrame = R.partial(R.frame(shape, payload: payload, tcpFlags: flags), shape)
        let ecnHeader = R.gsoHeader(shape, segmentSize: 1000, ecn: true)
        // A destination with TSO but without ECN gets segments.
        let tsoOnly = VirtioNetFeature.guestCsum.mask | VirtioNetFeature.guestTso4.mask
        let outcome = try resolve([(superFrame, ecnHeader)], accepted: tsoOnly)
        assertSameFrames(outcome.frames, R.segments(shape, payload: payload, segmentSize: 1000, tcpFlags: flags))
        // With ECN too it passes whole.
        let whole = try resolve([(superFrame, ecnHeader)], accepted: tsoOnly | VirtioNetFeature.guestEcn.mask)
        assertSameFrames(whole.frames, [superFrame])
        XCTAssertEqual(whole.headers, [ecnHeader])
    }

    func testSuperFramesPassWholeWithTheirHeaderToADestinationWithTheOffload() throws {
        for shape in [R.Shape(), R.Shape(ipv6: true)] {
            let superFrame = R.partial(R.frame(shape, payload: R.payload(9000)), shape)
            let header = R.gsoHeader(shape, segmentSize: 1448)
            let outcome = try resolve([(superFrame, header)], accepted: Self.everything)
            assertSameFrames(outcome.frames, [superFrame])
            XCTAssertEqual(outcome.headers, [header])
            XCTAssertEqual(outcome.totals.framesSegmented, 0)
        }
        // TSO4 does not cover a TCPv6 super-frame.
        let v6 = R.Shape(ipv6: true)
        let tso4 = VirtioNetFeature.guestCsum.mask | VirtioNetFeature.guestTso4.mask
        let outcome = try resolve([(R.partial(R.frame(v6, payload: R.payload(3000)), v6), R.gsoHeader(v6, segmentSize: 1448))], accepted: tso4)
        XCTAssertEqual(outcome.frames.count, 3)
    }

    func testOrderIsKeptAcrossPassedCompletedAndSegmentedFrames() throws {
        let shape = R.Shape()
        let plain = R.frame(shape, payload: R.payload(50, seed: 9))
        let superFrame = R.partial(R.frame(shape, payload: R.payload(150_000 / 100)), shape)
        let partialHeader = VirtioNetHeader(flags: VirtioNetHeader.flagNeedsChecksum, checksumStart: 34, checksumOffset: 16)
        let complete = R.frame(shape, payload: R.payload(70, seed: 3))
        let outcome = try resolve([(plain, VirtioNetHeader()), (superFrame, R.gsoHeader(shape, segmentSize: 500)),
                                   (R.partial(complete, shape), partialHeader), (plain, VirtioNetHeader())], accepted: 0)
        assertSameFrames(outcome.frames, [plain] + R.segments(shape, payload: R.payload(1500), segmentSize: 500) + [complete, plain])
    }

    func testHostileSuperFramesAreDroppedAsMalformed() throws {
        let shape = R.Shape()
        let good = R.partial(R.frame(shape, payload: R.payload(3000)), shape)
        var fragment = good
        fragment[R.networkOffset(shape) + 6] = 0x20  // more fragments
        var shortTCP = good
        shortTCP[R.transportOffset(shape) + 12] = 0x40  // data offset 16 < 20
        var wrongVersion = good
        wrongVersion[R.networkOffset(shape)] = 0x65
        var v6Header = R.gsoHeader(shape, segmentSize: 1000)
        v6Header.gsoType = VirtioNetHeader.gsoTCPv6  // says IPv6, frame is IPv4
        var unknownType = R.gsoHeader(shape, segmentSize: 1000)
        unknownType.gsoType = 0x42
        let hostile: [([UInt8], VirtioNetHeader)] = [
            (good, R.gsoHeader(shape, segmentSize: 0)),
            (good, R.gsoHeader(shape, segmentSize: 1)),       // 3000 segments > maxSegmentsPerFrame
            (fragment, R.gsoHeader(shape, segmentSize: 1000)),
            (shortTCP, R.gsoHeader(shape, segmentSize: 1000)),
            (wrongVersion, R.gsoHeader(shape, segmentSize: 1000)),
            (Array(good[0..<40]), R.gsoHeader(shape, segmentSize: 1000)),  // cut inside the TCP header
            (Array(good[0..<R.headerLength(shape)]), R.gsoHeader(shape, segmentSize: 1000)),  // no payload
            (good, v6Header),
            (good, unknownType),
        ]
        let outcome = try resolve(hostile, accepted: 0)
        XCTAssertEqual(outcome.frames.count, 0)
        XCTAssertEqual(outcome.totals.dropsMalformed, UInt64(hostile.count))
    }

    // MARK: UDP fragmentation offload

    static func ufoHeader(_ shape: R.Shape, fragmentSize: Int) -> VirtioNetHeader {
        var header = R.gsoHeader(shape, segmentSize: fragmentSize)
        header.gsoType = VirtioNetHeader.gsoUDP
        return header
    }

    func testUFODatagramsAreFragmentedExactlyAsANICWould() throws {
        for (shape, payloadLength, fragmentSize) in [(R.Shape(udp: true), 4000, 1480), (R.Shape(ipv6: true, udp: true), 3001, 1448),
                                                     (R.Shape(udp: true, vlan: true), 1473, 1480), (R.Shape(udp: true), 3000, 1001)] {
            let payload = R.payload(payloadLength, seed: 5)
            let datagram = R.partial(R.frame(shape, payload: payload), shape)
            let outcome = try resolve([(datagram, Self.ufoHeader(shape, fragmentSize: fragmentSize))], accepted: Self.checksumOnly)
            // gso_size 1001 counts as 1000: fragment data is a multiple of 8 bytes.
            let expected = R.fragments(shape, payload: payload, fragmentSize: fragmentSize & ~7)
            assertSameFrames(outcome.frames, expected, "\(shape) \(payloadLength)/\(fragmentSize)")
            XCTAssertTrue(outcome.headers.allSatisfy(\.isPlain))
            XCTAssertEqual(outcome.totals.framesSegmented, 1)
        }
    }

    func testAUFODatagramThatFitsOneFragmentGoesWholeWithItsChecksumCompleted() throws {
        let shape = R.Shape(ipv6: true, udp: true)
        let complete = R.frame(shape, payload: R.payload(500))
        let outcome = try resolve([(R.partial(complete, shape), Self.ufoHeader(shape, fragmentSize: 1448))], accepted: 0)
        assertSameFrames(outcome.frames, [complete])
    }

    func testUFOPassesWholeToADestinationWithGuestUFOAndIPv6FragmentsGetFreshIdentifications() throws {
        let shape = R.Shape(ipv6: true, udp: true)
        let datagram = R.partial(R.frame(shape, payload: R.payload(3000)), shape)
        let header = Self.ufoHeader(shape, fragmentSize: 1448)
        let whole = try resolve([(datagram, header)], accepted: Self.checksumOnly | VirtioNetFeature.guestUfo.mask)
        assertSameFrames(whole.frames, [datagram])
        XCTAssertEqual(whole.headers, [header])
        let twice = try resolve([(datagram, header), (datagram, header)], accepted: 0)
        assertSameFrames(twice.frames, R.fragments(shape, payload: R.payload(3000), fragmentSize: 1448, identification: 1)
                            + R.fragments(shape, payload: R.payload(3000), fragmentSize: 1448, identification: 2))
    }

    func testUFOWithAFragmentSizeUnderEightBytesIsDroppedAsMalformed() throws {
        let shape = R.Shape(udp: true)
        let datagram = R.partial(R.frame(shape, payload: R.payload(100)), shape)
        let outcome = try resolve([(datagram, Self.ufoHeader(shape, fragmentSize: 7))], accepted: 0)
        XCTAssertEqual(outcome.frames.count, 0)
        XCTAssertEqual(outcome.totals.dropsMalformed, 1)
    }

    func testWhatTheDestinationRefusesIsReportedAsOfferedMinusDelivered() throws {
        let shape = R.Shape()
        let superFrame = R.partial(R.frame(shape, payload: R.payload(14_480)), shape)
        let outcome = try resolve([(superFrame, R.gsoHeader(shape, segmentSize: 1448))], accepted: 0, deliver: 4)
        XCTAssertEqual(outcome.totals.offered, 10)
        XCTAssertEqual(outcome.totals.delivered, 4)
    }

    /// Frame lists compared byte for byte, reporting the first difference (not both lists).
    func assertSameFrames(_ got: [[UInt8]], _ want: [[UInt8]], _ message: String = "", file: StaticString = #filePath, line: UInt = #line) {
        guard got.count == want.count else {
            return XCTFail("\(message): \(got.count) frames, expected \(want.count)", file: file, line: line)
        }
        for (index, (a, b)) in zip(got, want).enumerated() where a != b {
            let at = zip(a, b).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? min(a.count, b.count)
            return XCTFail("\(message): frame \(index) (\(a.count) vs \(b.count) bytes) differs first at byte \(at)", file: file, line: line)
        }
    }

    static func batchSizes(_ count: Int) -> [Int] {
        stride(from: 0, to: count, by: OffloadResolver.slotCount).map { min(OffloadResolver.slotCount, count - $0) }
    }
}
