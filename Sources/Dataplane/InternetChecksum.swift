/// The Internet checksum (RFC 1071) for checksums the switch completes itself. Sums are
/// kept in memory byte order (RFC 1071 1.2.B: the one's-complement sum does not depend on
/// byte order), so loads and the final store need no swapping; values that are not read
/// from the frame (lengths, protocol numbers) are added in network order.
enum InternetChecksum {
    /// Adds `count` bytes at `bytes` to `sum` (an unfolded 64-bit accumulator).
    @inline(__always)
    static func add(_ bytes: UnsafeRawPointer, count: Int, to sum: UInt64) -> UInt64 {
        var total = sum
        var offset = 0
        // Unsafe: every load is inside [bytes, bytes + count), which the caller owns.
        while offset &+ 8 <= count {
            total = addWithCarry(total, bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
            offset &+= 8
        }
        while offset &+ 2 <= count {
            total = addWithCarry(total, UInt64(bytes.loadUnaligned(fromByteOffset: offset, as: UInt16.self)))
            offset &+= 2
        }
        if offset < count {
            // An odd last byte is the high-order byte of a word padded with zero (network
            // order), which in memory order is its first byte.
            var pad: UInt16 = 0
            withUnsafeMutableBytes(of: &pad) { $0[0] = bytes.load(fromByteOffset: offset, as: UInt8.self) }
            total = addWithCarry(total, UInt64(pad))
        }
        return total
    }

    /// One's-complement addition in 64 bits: a carry out wraps around to bit 0.
    @inline(__always)
    static func addWithCarry(_ a: UInt64, _ b: UInt64) -> UInt64 {
        let (low, carry) = a.addingReportingOverflow(b)
        return low &+ (carry ? 1 : 0)
    }

    /// Adds a 16-bit value given in host order (a length or protocol number).
    @inline(__always)
    static func add(networkOrder value: UInt16, to sum: UInt64) -> UInt64 {
        addWithCarry(sum, UInt64(value.bigEndian))
    }

    /// Folds an accumulator to 16 bits (not complemented), in memory byte order.
    @inline(__always)
    static func fold(_ sum: UInt64) -> UInt16 {
        var folded = (sum & 0xffff_ffff) &+ (sum >> 32)
        folded = (folded & 0xffff_ffff) &+ (folded >> 32)
        folded = (folded & 0xffff) &+ (folded >> 16)
        folded = (folded & 0xffff) &+ (folded >> 16)
        folded = (folded & 0xffff) &+ (folded >> 16)
        return UInt16(truncatingIfNeeded: folded)
    }

    /// The checksum field for a sum: complemented, with 0 sent as 0xffff (UDP reserves 0
    /// for "no checksum"; for TCP both encode the same value), in memory byte order.
    @inline(__always)
    static func field(for sum: UInt64) -> UInt16 {
        let value = ~fold(sum)
        return value == 0 ? 0xffff : value
    }

    /// Completes a partial checksum the way a NIC does for NEEDS_CSUM (VIRTIO 1.1 5.1.6.2):
    /// the field at `start + offset` holds the pseudo-header sum; the result is the
    /// complemented sum of every byte from `start` to the end of the frame. The caller has
    /// checked `start + offset + 2 <= length`.
    @inline(__always)
    static func complete(_ frame: UnsafeMutableRawPointer, length: Int, start: Int, offset: Int) {
        // Unsafe: start <= start + offset + 2 <= length (checked by the caller).
        let sum = add(frame + start, count: length &- start, to: 0)
        frame.storeBytes(of: field(for: sum), toByteOffset: start &+ offset, as: UInt16.self)
    }
}
