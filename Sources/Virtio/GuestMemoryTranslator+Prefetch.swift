import CVhostShims
import VhostSystem

extension GuestMemoryTranslator {
    /// Prefetch hints for the first lines of a frame buffer at guest-physical `address`
    /// (both ring layouts, before a burst). To be read (transmit): header and frame lines.
    /// To be written (receive): the header line read, since the header is stored only when
    /// it differs (VirtioNetHeader.storeIfDifferent), and the frame's first two lines for
    /// writing. Nothing when the 128 bytes do not translate: a hint only.
    @inlinable @inline(__always)
    func prefetchFrame(at address: UInt64, headerSize: Int, forWriting: Bool) {
        guard let host = guestPhysical(address, length: 128) else { return }
        // Safe: every line lies in the translated 128 bytes (headerSize <= 12).
        if forWriting {
            vhost_shims_prefetch_read(host)
            vhost_shims_prefetch_write(host + headerSize)
            vhost_shims_prefetch_write(host + (headerSize &+ 64))
        } else {
            vhost_shims_prefetch_read(host)
            vhost_shims_prefetch_read(host + 64)
        }
    }
}
