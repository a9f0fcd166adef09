import VhostSystem

/// Reading a transmitted virtio-net header that the driver may have split over several
/// buffers (legal, rare); shared by both ring layouts.
extension VirtioNetHeader {
    /// Takes the next header bytes from a buffer of `available` translated bytes at `source`
    /// into `header`, of which `filled` of `size` bytes are already gathered; returns how many
    /// bytes it took. The usual case, the whole header in the first buffer, reads it in place
    /// (each field loaded once, so a guest rewriting it cannot split a check).
    @inlinable @inline(__always)
    static func gather(_ header: inout VirtioNetHeader, filled: inout Int, size: Int,
                       from source: UnsafeRawPointer, available: Int) -> Int {
        if filled == 0 && available >= size {
            // Safe: the buffer has `available` >= size translated bytes.
            header = VirtioNetHeader(loadingFrom: source, size: size)
            filled = size
            return size
        }
        let take = min(available, size &- filled)
        gatherPiece(&header, filled: filled, size: size, from: source, count: take)
        filled &+= take
        return take
    }

    /// Adds `count` bytes starting at header byte `filled` by re-encoding what was gathered.
    @inlinable @inline(never)
    static func gatherPiece(_ header: inout VirtioNetHeader, filled: Int, size: Int, from source: UnsafeRawPointer, count: Int) {
        var image: (UInt64, UInt64) = (0, 0)
        withUnsafeMutableBytes(of: &image) { bytes in
            // Safe: filled + count <= size <= 12 < 16 bytes of image; `source` has `count`
            // translated bytes.
            header.store(to: bytes.baseAddress!, size: size)
            bytes.baseAddress!.advanced(by: filled).copyMemory(from: source, byteCount: count)
            header = VirtioNetHeader(loadingFrom: bytes.baseAddress!, size: size)
        }
    }
}
