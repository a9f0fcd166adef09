import CVhostShims
import VhostSystem

/// The dirty-page bitmap of live migration (vhost-user SET_LOG_BASE, feature LOG_ALL):
/// one bit per 4 KiB guest-physical page, `log[page / 8] |= 1 << (page % 8)`, set
/// atomically because QEMU reads and clears it concurrently. Pages beyond the log's size
/// are ignored, never written.
public final class DirtyLog: @unchecked Sendable {  // immutable after init; bits are atomic
    public static let pageShift: UInt64 = 12

    public let mapping: MemoryMapping
    public let offset: UInt64
    public let size: UInt64
    @usableFromInline let base: UnsafeMutableRawPointer
    @usableFromInline let byteCount: UInt64

    /// The log is bytes [offset, offset + size) of `mapping` (SET_LOG_BASE's mmap_offset and
    /// mmap_size). Keeps `mapping` alive.
    public init(mapping: MemoryMapping, offset: UInt64, size: UInt64) throws(GuestMemoryError) {
        guard size > 0 else { throw .zeroSize }
        let (end, wraps) = offset.addingReportingOverflow(size)
        guard !wraps, end <= UInt64(mapping.length) else { throw .logOutsideMapping }
        self.mapping = mapping
        self.offset = offset
        self.size = size
        // Safe: offset + size <= mapping.length, checked above.
        base = mapping.base + Int(offset)
        byteCount = size
    }

    /// The number of guest-physical bytes this log can describe.
    public var coveredGuestPhysicalSize: UInt64 {
        byteCount.multipliedReportingOverflow(by: 8 << Self.pageShift).overflow ? .max : byteCount * (8 << Self.pageShift)
    }

    /// Marks every page that [address, address + length) touches. Ranges that run past the
    /// end of the address space are clipped; pages beyond the log are ignored.
    @inlinable
    public func markGuestPhysical(_ address: UInt64, length: UInt64) {
        guard length != 0 else { return }
        let (last, wraps) = address.addingReportingOverflow(length - 1)
        let lastAddress = wraps ? UInt64.max : last
        var page = address >> Self.pageShift
        let lastPage = lastAddress >> Self.pageShift
        while page <= lastPage {
            let byte = page >> 3
            guard byte < byteCount else { return }
            // Safe: byte < byteCount, the log's size inside its mapping.
            vhost_shims_atomic_or_u8(base + Int(truncatingIfNeeded: byte), UInt8(1) << UInt8(truncatingIfNeeded: page & 7))
            page &+= 1
        }
    }

    /// Whether a page's bit is set (tests, diagnostics).
    public func isMarked(page: UInt64) -> Bool {
        let byte = page >> 3
        guard byte < byteCount else { return false }
        // Safe: byte < byteCount.
        return base.load(fromByteOffset: Int(byte), as: UInt8.self) & (1 << UInt8(page & 7)) != 0
    }
}
