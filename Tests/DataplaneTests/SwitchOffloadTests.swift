import XCTest
import Virtio
@testable import Dataplane

/// Offloads through the whole switch: a guest that negotiated checksum and TSO sends a
/// super-frame; a guest with the GUEST_* offloads gets it whole with its header byte for
/// byte, a guest without them gets wire-sized segments with complete checksums.
final class SwitchOffloadTests: SimulatedGuestSwitchTestCase {
    typealias R = ReferenceFrames
    static let hostOffloads = VirtioNetFeature.csum.mask | VirtioNetFeature.hostTso4.mask | VirtioNetFeature.hostTso6.mask
        | VirtioNetFeature.hostEcn.mask
    static let guestOffloads = VirtioNetFeature.guestCsum.mask | VirtioNetFeature.guestTso4.mask | VirtioNetFeature.guestTso6.mask
        | VirtioNetFeature.guestEcn.mask


    func testSuperFramePassesWholeToAnOffloadGuestAndIsSegmentedForAPlainOne() throws {
        let sender = try SimulatedGuestPort(mac: R.source, features: SimulatedGuestPort.features | Self.hostOffloads, bufferSize: 16_384)
        let offloadReceiver = try SimulatedGuestPort(mac: R.destination, features: SimulatedGuestPort.features | Self.guestOffloads,
                                                     bufferSize: 16_384)
        let plainReceiver = try SimulatedGuestPort(mac: [2, 0, 0, 0, 0, 0xC])
        offloadReceiver.keepFrames = true
        plainReceiver.keepFrames = true
        _ = try attach(sender, name: "sender")
        let idOffload = try attach(offloadReceiver, name: "offload")
        let idPlain = try attach(plainReceiver, name: "plain")

        // The destination MAC is not learned yet: the frame floods to both receivers.
        let shape = R.Shape()
        let payload = R.payload(9000)
        let superFrame = R.partial(R.frame(shape, payload: payload), shape)
        let header = R.gsoHeader(shape, segmentSize: 1448)
        sender.transmit(frame: superFrame, header: header)

        XCTAssertEqual(offloadReceiver.waitForFrames(1), 1)
        XCTAssertEqual(offloadReceiver.receivedFrames, [superFrame], "the super-frame as sent")
        var expectedHeader = [UInt8](repeating: 0, count: 12)
        var delivered = header
        delivered.bufferCount = 1
        expectedHeader.withUnsafeMutableBytes { delivered.store(to: $0.baseAddress!, size: 12) }
        XCTAssertEqual(offloadReceiver.receivedHeaders, [expectedHeader], "the header byte for byte (num_buffers 1)")

        let segments = R.segments(shape, payload: payload, segmentSize: 1448)
        XCTAssertEqual(plainReceiver.waitForFrames(segments.count), segments.count)
        XCTAssertTrue(plainReceiver.receivedFrames == segments, "segments equal the independently built ones")
        XCTAssertEqual(plainReceiver.receivedHeaders, Array(repeating: [UInt8](repeating: 0, count: 12), count: segments.count).map { h in
            var h = h
            h[10] = 1  // num_buffers
            return h
        })
        XCTAssertEqual(fabric.statistics(portID: idPlain)[.offloadFramesSegmented], 1)
        XCTAssertEqual(fabric.statistics(portID: idPlain)[.offloadSegments], UInt64(segments.count))
        XCTAssertEqual(fabric.statistics(portID: idPlain)[.txPackets], UInt64(segments.count))
        XCTAssertEqual(fabric.statistics(portID: idOffload)[.offloadFramesSegmented], 0)
        XCTAssertEqual(fabric.statistics(portID: idOffload)[.txPackets], 1)
    }

    func testPartialChecksumIsCompletedForAGuestWithoutGuestCsum() throws {
        let sender = try SimulatedGuestPort(mac: R.source, features: SimulatedGuestPort.features | VirtioNetFeature.csum.mask)
        let receiver = try SimulatedGuestPort(mac: R.destination)
        receiver.keepFrames = true
        _ = try attach(sender, name: "sender")
        let id = try attach(receiver, name: "receiver")
        let shape = R.Shape(ipv6: true, udp: true)
        let complete = R.frame(shape, payload: R.payload(333))
        let header = VirtioNetHeader(flags: VirtioNetHeader.flagNeedsChecksum, checksumStart: UInt16(R.transportOffset(shape)),
                                     checksumOffset: UInt16(R.checksumOffset(shape)))
        sender.transmit(frame: R.partial(complete, shape), header: header)
        XCTAssertEqual(receiver.waitForFrames(1), 1)
        XCTAssertEqual(receiver.receivedFrames, [complete])
        XCTAssertEqual(fabric.statistics(portID: id)[.offloadChecksumsCompleted], 1)
    }

    func testAGuestCannotSendOffloadsItDidNotNegotiate() throws {
        // No HOST_TSO4: the super-frame's header is malformed for this sender and dropped
        // on receive (the ring's drops_malformed_header), before any forwarding.
        let sender = try SimulatedGuestPort(mac: R.source, features: SimulatedGuestPort.features | VirtioNetFeature.csum.mask,
                                            bufferSize: 16_384)
        let receiver = try SimulatedGuestPort(mac: R.destination)
        _ = try attach(sender, name: "sender")
        _ = try attach(receiver, name: "receiver")
        let shape = R.Shape()
        sender.transmit(frame: R.partial(R.frame(shape, payload: R.payload(3000)), shape), header: R.gsoHeader(shape, segmentSize: 1000))
        XCTAssertEqual(receiver.waitForFrames(1, timeout: 0.3), 0)
        XCTAssertEqual(sender.transmitQueue.settings.statistics.snapshot().dropsMalformedHeader, 1)
    }
}
