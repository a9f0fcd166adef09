import XCTest
@testable import Virtio

/// `storeIfDifferent`: a receive buffer that already holds the header is left alone (the
/// driver keeps its cache line); any difference in any field is written, byte for byte as
/// `store` would.
final class VirtioNetHeaderStoreTests: XCTestCase {
    private func stored(_ header: VirtioNetHeader, size: Int) -> [UInt8] {
        var bytes = [UInt8](repeating: 0xee, count: 16)
        bytes.withUnsafeMutableBytes { header.store(to: $0.baseAddress!, size: size) }
        return bytes
    }

    func testSameHeaderIsNotWrittenAndEveryDifferentFieldIs() {
        var full = VirtioNetHeader(flags: VirtioNetHeader.flagNeedsChecksum, checksumStart: 34, checksumOffset: 16)
        full.gsoType = 1
        full.headerLength = 0x0102
        full.gsoSize = 1448
        full.bufferCount = 3
        for size in [10, 12] {
            let image = stored(full, size: size)
            var buffer = image
            XCTAssertFalse(buffer.withUnsafeMutableBytes { full.storeIfDifferent(to: $0.baseAddress!, size: size) }, "size \(size)")
            XCTAssertEqual(buffer, image)
            // Change one byte of the header at a time: each must be noticed and rewritten;
            // nothing after the header is touched.
            for offset in 0..<size {
                buffer = image
                buffer[offset] ^= 0x40
                XCTAssertTrue(buffer.withUnsafeMutableBytes { full.storeIfDifferent(to: $0.baseAddress!, size: size) },
                              "size \(size), byte \(offset)")
                XCTAssertEqual(buffer, image, "size \(size), byte \(offset)")
            }
            // A 10-byte header ignores what follows it (num_buffers is not part of it).
            if size == 10 {
                buffer = image
                buffer[10] = 0x55
                XCTAssertFalse(buffer.withUnsafeMutableBytes { full.storeIfDifferent(to: $0.baseAddress!, size: 10) })
                XCTAssertEqual(buffer[10], 0x55)
            }
        }
    }
}
