import VhostSystem

/// One region as the front-end describes it (vhost-user VhostUserMemoryRegion).
public struct GuestMemoryRegionDescriptor: Equatable, Sendable {
    public var guestPhysicalAddress: UInt64
    public var size: UInt64
    /// The front-end's (QEMU's) virtual address of the region: ring addresses use it.
    public var userspaceAddress: UInt64
    /// Where the region starts inside the fd.
    public var mmapOffset: UInt64

    public init(guestPhysicalAddress: UInt64, size: UInt64, userspaceAddress: UInt64, mmapOffset: UInt64) {
        self.guestPhysicalAddress = guestPhysicalAddress
        self.size = size
        self.userspaceAddress = userspaceAddress
        self.mmapOffset = mmapOffset
    }
}

/// One mapped region of guest memory. Owns its mapping: unmapped exactly once, when the
/// last `GuestMemory` holding it goes away.
public final class GuestMemoryRegion: @unchecked Sendable {  // immutable after init
    public let descriptor: GuestMemoryRegionDescriptor
    /// The whole mapping, [0, mmapOffset + size) of the file (rounded up to the block size).
    public let mapping: MemoryMapping
    /// Where guest-physical address `descriptor.guestPhysicalAddress` lives in this process.
    public let hostAddress: UnsafeMutableRawPointer

    private init(descriptor: GuestMemoryRegionDescriptor, mapping: MemoryMapping) {
        self.descriptor = descriptor
        self.mapping = mapping
        // Safe: map() checked mmapOffset + size <= mapping.length.
        hostAddress = mapping.base + Int(descriptor.mmapOffset)
    }

    /// Validates `descriptor` against the file behind `fd` and maps it shared, read-write.
    /// Like DPDK, maps from file offset 0 (mmap offsets must be page aligned, mmap_offset
    /// need not be) and rounds the length up to the file's block size (hugetlbfs needs
    /// hugepage-aligned lengths to unmap). The caller may close `fd` afterwards.
    public static func map(_ descriptor: GuestMemoryRegionDescriptor, fd: FileDescriptor) throws(GuestMemoryError) -> GuestMemoryRegion {
        guard descriptor.size > 0 else { throw .zeroSize }
        let (_, gpaWraps) = descriptor.guestPhysicalAddress.addingReportingOverflow(descriptor.size)
        let (_, vaWraps) = descriptor.userspaceAddress.addingReportingOverflow(descriptor.size)
        let (needed, offsetWraps) = descriptor.mmapOffset.addingReportingOverflow(descriptor.size)
        guard !gpaWraps, !vaWraps, !offsetWraps, needed <= UInt64(Int.max) else { throw .addressOverflow }

        let status: FileStatus
        do { status = try fd.status() } catch { throw .notMappable }
        guard status.isRegularFile else { throw .notMappable }
        guard status.size >= needed else { throw .fileTooShort(needed: needed, actual: status.size) }

        var length = needed
        let block = status.blockSize
        if block > 1, block & (block - 1) == 0, block <= 1 << 30 {
            let (rounded, wraps) = needed.addingReportingOverflow(block - 1)
            if !wraps, rounded & ~(block - 1) <= UInt64(Int.max) { length = rounded & ~(block - 1) }
        }
        let mapping: MemoryMapping
        do { mapping = try MemoryMapping(descriptor: fd, length: Int(length), offset: 0) } catch {
            throw .mapFailed(errno: error.errno)
        }
        return GuestMemoryRegion(descriptor: descriptor, mapping: mapping)
    }
}
