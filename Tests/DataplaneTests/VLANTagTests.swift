import XCTest
import Virtio
@testable import Dataplane

/// 802.1Q tags moved in place on a buffer with headroom: bytes and offload offsets exact,
/// and frames whose tag cannot come off are refused untouched.
final class VLANTagTests: XCTestCase {
    private let storage = UnsafeMutableRawPointer.allocate(byteCount: 256, alignment: 64)
    deinit { storage.deallocate() }

    private func buffer(_ bytes: [UInt8], header: VirtioNetHeader = VirtioNetHeader()) -> PacketBuffer {
        let data = storage + PacketBufferPool.headroom
        bytes.withUnsafeBytes { data.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        var buffer = PacketBuffer(data: data, capacity: 256 - PacketBufferPool.headroom, length: bytes.count)
        buffer.header = header
        return buffer
    }

    private func bytes(_ buffer: PacketBuffer) -> [UInt8] { Array(UnsafeRawBufferPointer(start: buffer.data, count: buffer.length)) }

    func testPushThenUnpushAndPopAreExact() {
        let plain = SegmentFrames.untagged(to: SegmentFrames.mac(0xB), from: 0xA, payload: 1, length: 60)
        let header = VirtioNetHeader(flags: VirtioNetHeader.flagNeedsChecksum, gsoType: VirtioNetHeader.gsoTCPv4, headerLength: 54,
                                     gsoSize: 1448, checksumStart: 34, checksumOffset: 16)
        var packet = buffer(plain, header: header)
        XCTAssertEqual(VLANTag.vid(of: packet), VLANTag.untagged)
        VLANTag.push(&packet, vid: 4094)
        XCTAssertEqual(bytes(packet), SegmentFrames.tagged(to: SegmentFrames.mac(0xB), from: 0xA, vlan: 4094, payload: 1, length: 60))
        XCTAssertEqual(VLANTag.vid(of: packet), 4094)
        XCTAssertEqual([packet.header.checksumStart, packet.header.headerLength], [38, 58])
        XCTAssertEqual(packet.header.gsoSize, 1448)
        XCTAssertEqual(packet.data, storage + PacketBufferPool.headroom - 4)
        VLANTag.unpush(&packet)
        XCTAssertEqual(bytes(packet), plain)
        XCTAssertEqual(packet.header, header)
        XCTAssertEqual(packet.data, storage + PacketBufferPool.headroom)

        var tagged = buffer(SegmentFrames.tagged(to: SegmentFrames.mac(0xB), from: 0xA, vlan: 10, payload: 1, length: 60),
                            header: VirtioNetHeader(flags: VirtioNetHeader.flagNeedsChecksum, checksumStart: 38, checksumOffset: 16))
        XCTAssertTrue(VLANTag.pop(&tagged))
        XCTAssertEqual(bytes(tagged), plain)
        XCTAssertEqual(tagged.header.checksumStart, 34)
        XCTAssertEqual(tagged.capacity, 256 - PacketBufferPool.headroom - 4)
    }

    func testATagThatCannotComeOffIsRefusedUntouched() {
        let tagged = SegmentFrames.tagged(to: SegmentFrames.mac(0xB), from: 0xA, vlan: 10, payload: 1, length: 60)
        var runt = buffer(Array(tagged[0..<17]))
        XCTAssertFalse(VLANTag.pop(&runt), "no type after the tag")
        XCTAssertEqual(bytes(runt), Array(tagged[0..<17]))
        // A checksum or header length pointing into the tag.
        for header in [VirtioNetHeader(flags: VirtioNetHeader.flagNeedsChecksum, checksumStart: 14, checksumOffset: 0),
                       VirtioNetHeader(gsoType: VirtioNetHeader.gsoTCPv4, headerLength: 16, gsoSize: 100)] {
            var packet = buffer(tagged, header: header)
            XCTAssertFalse(VLANTag.pop(&packet))
            XCTAssertEqual(bytes(packet), tagged)
            XCTAssertEqual(packet.header, header)
        }
        XCTAssertEqual(VLANTag.vid(of: buffer(Array(tagged[0..<15]))), 0, "a tag too short for its TCI reads as a priority tag")
    }
}
