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
    /// The file range the region needs: [mmapOffset rounded down to the block size,
    /// mmapOffset + size rounded up to it).
    public let mapping: MemoryMapping
    /// Where guest-physical address `descriptor.guestPhysicalAddress` lives in this process.
    public let hostAddress: UnsafeMutableRawPointer
    private init(descriptor: GuestMemoryRegionDescriptor, mapping: MemoryMapping, startInMapping: Int) {
        self.descriptor = descriptor
        self.mapping = mapping
        // Safe: map() checked startInMapping + size <= mapping.length.
        hostAddress = mapping.base + startInMapping
    }

    /// Validates `descriptor` against the file behind `fd` and maps the range it needs,
    /// shared and read-write. Only that range: mmap offsets must be aligned to the file's
    /// block size (4 KiB, or the hugepage size on hugetlbfs, which also needs aligned lengths
    /// to unmap), so the offset is rounded down and the end up, and a region at a huge offset
    /// of a sparse file costs its own size of address space, not the offset's.
    ///
    /// With `faultFlag`, a file that shrinks later is contained (`GuestMemoryGuard`): the
    /// access completes on anonymous memory and the flag says the session must end. Every
    /// mapping takes the guard, sealed memfds too: F_SEAL_SHRINK does not stop a hole being
    /// punched (fallocate), and a hugetlbfs memfd can be sealed yet fault on a punched hole
    /// when the hugepage pool is empty. The caller may close `fd` afterwards.
    ///
    /// `mappingBudget`: the most this mapping may take (what is left of the session's cap),
    /// checked on the rounded length before mmap, so a refused region never costs address space.
    public static func map(_ descriptor: GuestMemoryRegionDescriptor, fd: FileDescriptor,
                           faultFlag: GuestFaultFlag? = nil,
                           mappingBudget: UInt64 = .max) throws(GuestMemoryError) -> GuestMemoryRegion {
        guard descriptor.size > 0 else { throw .zeroSize }
        let (_, gpaWraps) = descriptor.guestPhysicalAddress.addingReportingOverflow(descriptor.size)
        let (_, vaWraps) = descriptor.userspaceAddress.addingReportingOverflow(descriptor.size)
        let (needed, offsetWraps) = descriptor.mmapOffset.addingReportingOverflow(descriptor.size)
        guard !gpaWraps, !vaWraps, !offsetWraps, needed <= UInt64(Int64.max) else { throw .addressOverflow }

        let status: FileStatus
        do { status = try fd.status() } catch { throw .notMappable }
        guard status.isRegularFile else { throw .notMappable }
        guard status.size >= needed else { throw .fileTooShort(needed: needed, actual: status.size) }

        var block = status.blockSize
        if block < 4096 || block & (block - 1) != 0 || block > 1 << 30 { block = 4096 }
        let start = descriptor.mmapOffset & ~(block - 1)
        let (roundedEnd, endWraps) = needed.addingReportingOverflow(block - 1)
        guard !endWraps else { throw .addressOverflow }
        let end = roundedEnd & ~(block - 1)
        let length = end - start  // >= size > 0; <= Int64.max + block: checked next
        guard length <= UInt64(Int.max) else { throw .addressOverflow }
        guard length <= mappingBudget else { throw .overMappingBudget(length: length, budget: mappingBudget) }
        let mapping: MemoryMapping
        do {
            mapping = try MemoryMapping(descriptor: fd, length: Int(length), offset: start,
                                        guarding: faultFlag)
        } catch {
            throw GuestMemoryGuard.isRegistryFull(error) ? .guardRegistryFull(limit: GuestMemoryGuard.slotLimit) : .mapFailed(errno: error.errno)
        }
        return GuestMemoryRegion(descriptor: descriptor, mapping: mapping,
                                 startInMapping: Int(descriptor.mmapOffset - start))
    }
}
