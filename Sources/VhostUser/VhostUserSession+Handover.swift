import VhostSystem
import Virtio

/// The session as plain values for a live hand-over (`VhostUserSessionExport`), and where its
/// rings resume when the hand-over failed. Control thread, queues withdrawn: every ring's
/// position is where its queue stopped and nothing is in flight.
extension VhostUserSession {
    /// The new process may have polled the rings before it failed: a split ring whose used
    /// index in guest memory moved since the export resumes from it (nothing is in flight
    /// between bursts, in either process). A packed ring has no such index and resumes where
    /// this process stopped.
    func resumeFromGuestMemoryAfterHandover() {
        guard !ringsArePacked else { return }
        for ring in vrings where ring.position.baseIsSet {
            guard let used = observer(ring)?.currentUsedIndex(), used != (ring.position.usedBase ?? ring.position.base) else { continue }
            logger.notice("vring \(ring.index) moved during the failed hand-over; resuming from used index \(used)")
            ring.position = VirtqueuePosition(base: used)
        }
    }

    /// Appends every fd the session holds to `descriptors` (borrowed: they stay open here) and
    /// names them by index.
    func export(socket: FileDescriptor, into descriptors: inout [FileDescriptor]) -> VhostUserSessionExport {
        func index(_ fd: FileDescriptor?) -> Int? {
            guard let fd, fd.isOpen else { return nil }
            descriptors.append(fd)
            return descriptors.count - 1
        }
        let socketIndex = index(socket) ?? -1
        let regions = zip(memoryRegions, memoryFiles).map { region, file in
            VhostUserSessionExport.MemoryRegion(region: region.descriptor, descriptor: index(file) ?? -1)
        }
        let log = dirtyLogSource.map {
            VhostUserSessionExport.DirtyLog(descriptor: index($0.file) ?? -1, size: $0.size, offset: $0.offset)
        }
        let packed = ringsArePacked
        let rings = vrings.filter(\.touched).map { ring in
            VhostUserSessionExport.Vring(
                index: ring.index, size: ring.size, addresses: ring.addresses,
                position: ring.position.baseIsSet ? Self.exported(ring.position, packed: packed) : nil,
                enabled: ring.explicitlyEnabled, started: ring.started,
                kick: index(ring.kick), call: index(ring.call), err: index(ring.err))
        }
        return VhostUserSessionExport(
            socket: socketIndex, offeredFeatures: offeredFeatures, negotiatedFeatures: negotiatedFeatures,
            negotiatedProtocolFeatures: negotiatedProtocolFeatures, status: status, mtu: mtu,
            memoryRegions: regions, dirtyLog: log, vrings: rings)
    }

    private static func exported(_ position: VirtqueuePosition, packed: Bool) -> VhostUserSessionExport.RingPosition {
        let used = position.usedBase ?? position.base
        guard packed else { return .init(lastAvailIndex: position.base, lastUsedIndex: used) }
        let (availIndex, availWrap) = PackedVirtqueue.decodeBase(position.base)
        let (usedIndex, usedWrap) = PackedVirtqueue.decodeBase(used)
        return .init(lastAvailIndex: availIndex, lastUsedIndex: usedIndex, availWrapCounter: availWrap, usedWrapCounter: usedWrap)
    }
}
