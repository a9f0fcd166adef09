import VhostSystem
import Virtio

/// The memory table (SET_MEM_TABLE, ADD/REM_MEM_REG) and the dirty log (SET_LOG_BASE).
/// The dispatcher withdrew the queues before any of these run.
extension VhostUserSession {
    func setMemTable(_ table: MemoryTable) throws(VhostUserProtocolError) -> VhostUserResponse {
        var mapped: [GuestMemoryRegion] = []
        var files: [FileDescriptor] = []
        var budget = VhostUserLimits.maxMappedGuestMemory
        for region in table.regions {
            let next = try mapRegion(region, budget: budget, .setMemTable)
            budget -= UInt64(next.mapping.length)
            mapped.append(next)
            files.append(try keptCopy(of: region.fd, .setMemTable))
        }
        try install(mapped, files: files, maxRegions: MemoryTable.maxRegions, .setMemTable)
        return .done
    }

    func addMemoryRegion(_ payload: MemoryRegionMessage) throws(VhostUserProtocolError) -> VhostUserResponse {
        let region = payload.region
        // The mapping keeps what it needs; the fd is not kept.
        defer { region.fd?.close() }
        guard memoryRegions.count < VhostUserLimits.maxMemorySlots else {
            throw .memoryTableRefused(.addMemReg, "all \(VhostUserLimits.maxMemorySlots) memory slots in use")
        }
        let inUse = memoryRegions.reduce(UInt64(0)) { $0 + UInt64($1.mapping.length) }
        let cap = VhostUserLimits.maxMappedGuestMemory
        let mapped = try mapRegion(region, budget: cap - min(inUse, cap), .addMemReg)
        try install(memoryRegions + [mapped], files: memoryFiles + [try keptCopy(of: region.fd, .addMemReg)],
                    maxRegions: VhostUserLimits.maxMemorySlots, .addMemReg)
        return .done
    }

    func removeMemoryRegion(_ payload: MemoryRegionMessage) throws(VhostUserProtocolError) -> VhostUserResponse {
        let region = payload.region.descriptor
        guard let position = memoryRegions.firstIndex(where: {
            $0.descriptor.guestPhysicalAddress == region.guestPhysicalAddress && $0.descriptor.size == region.size
                && $0.descriptor.userspaceAddress == region.userspaceAddress
        }) else {
            throw .memoryTableRefused(.remMemReg, "no region \(region.summary)")
        }
        var remaining = memoryRegions
        remaining.remove(at: position)
        var files = memoryFiles
        files.remove(at: position)
        if remaining.isEmpty {
            memory = nil
            memoryRegions = []
            memoryFiles = []
            revalidateRings(.remMemReg)
            return .done
        }
        try install(remaining, files: files, maxRegions: VhostUserLimits.maxMemorySlots, .remMemReg)
        return .done
    }

    /// Maps a validated region from its fd, guarded by the session's fault flag, if its
    /// mapping fits in `budget` (what is left of `VhostUserLimits.maxMappedGuestMemory`).
    private func mapRegion(_ region: MemoryRegion, budget: UInt64, _ request: VhostUserRequest) throws(VhostUserProtocolError) -> GuestMemoryRegion {
        guard let fd = region.fd else { throw .missingDescriptor(request) }
        do {
            return try GuestMemoryRegion.map(region.descriptor, fd: fd, faultFlag: faultFlag, mappingBudget: budget)
        } catch {
            throw .memoryTableRefused(request, "region \(region.descriptor.summary): \(error)")
        }
    }

    /// A copy of a region's or the log's fd, kept with the mapping for a live hand-over
    /// (`export`): the new process maps the same files.
    private func keptCopy(of fd: FileDescriptor?, _ request: VhostUserRequest) throws(VhostUserProtocolError) -> FileDescriptor {
        guard let fd else { throw .missingDescriptor(request) }
        do { return try FileDescriptor.duplicate(fd.rawValue) } catch { throw .memoryTableRefused(request, "dup: \(error)") }
    }

    /// Replaces the memory table (the queues were withdrawn by the dispatcher). Rings keep
    /// their indices and are re-validated against the new table.
    private func install(_ regions: [GuestMemoryRegion], files: [FileDescriptor], maxRegions: Int,
                         _ request: VhostUserRequest) throws(VhostUserProtocolError) {
        let table: GuestMemory
        do {
            table = try GuestMemory(regions: regions, maxRegions: maxRegions)
        } catch {
            throw .memoryTableRefused(request, "\(error)")
        }
        memory = table
        memoryRegions = regions
        memoryFiles = files
        logger.info("memory table set", metadata: ["regions": "\(regions.map(\.descriptor.summary))"])
        revalidateRings(.setMemTable)
    }

    /// SET_LOG_BASE: the dirty-page bitmap, one bit per 4 KiB guest page up to the last
    /// guest-physical byte (vhost-user.rst "Migration"). The row requires a memory table.
    func setLogBase(_ log: LogBase) throws(VhostUserProtocolError) -> VhostUserResponse {
        guard let memory else { throw .noMemoryTable(.setLogBase) }
        let needed = memory.highestGuestPhysicalAddress / 4096 / 8 + 1
        guard log.mmapSize >= needed else { throw .dirtyLogRefused("size \(log.mmapSize) too small for guest memory (needs \(needed))") }
        let pageOffset = log.mmapOffset & ~UInt64(4095)
        let delta = Int(log.mmapOffset - pageOffset)
        let mapping: MemoryMapping
        do {
            mapping = try MemoryMapping(descriptor: log.fd, length: delta + Int(log.mmapSize), offset: pageOffset,
                                        guarding: faultFlag)
        } catch {
            throw .dirtyLogRefused("mmap: \(error)")
        }
        let kept: FileDescriptor
        do {
            dirtyLog = try DirtyLog(mapping: mapping, offset: UInt64(delta), size: log.mmapSize)
            kept = try FileDescriptor.duplicate(log.fd.rawValue)
        } catch {
            throw .dirtyLogRefused("\(error)")
        }
        dirtyLogSource = DirtyLogSource(file: kept, size: log.mmapSize, offset: log.mmapOffset)
        logger.info("dirty log set", metadata: ["size": "\(log.mmapSize)"])
        return .done
    }
}
