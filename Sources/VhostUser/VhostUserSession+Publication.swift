import Virtio

/// When rings run, the queues the dataplane gets (built by `Virtio.VirtqueueBuilder`), and
/// the session's part of the API snapshot.
extension VhostUserSession {
    /// With the STATUS protocol feature the front-end says when the driver is ready; until
    /// DRIVER_OK (and from the moment it is cleared, as QEMU does before GET_VRING_BASE) the
    /// rings are not ours to use (VIRTIO 1.1 3.1.1). DPDK's back-end waits for it the same way.
    /// Without STATUS, ring readiness alone decides.
    private var driverAllowsRings: Bool {
        !hasProtocolFeature(.status) || status & Self.statusDriverOK != 0
    }

    /// The ready rule: memory is mapped, the driver is ready (see `driverAllowsRings`), the
    /// first queue pair is enabled, and every enabled ring the front-end has touched has a
    /// size, addresses inside guest memory and a kick (or NOFD). Then every enabled ring is
    /// published; disabled rings never are. The dispatcher calls this once per read batch
    /// that changed rings.
    func publishQueues() {
        guard let memory, driverAllowsRings else {
            device.publish(nil)
            return
        }
        let protocolFeatures = protocolFeaturesNegotiated
        var queues: [ActiveQueue] = []
        for ring in vrings where ring.isEnabled(protocolFeaturesNegotiated: protocolFeatures) {
            guard ring.touched || ring.index < 2 else { continue }
            guard ring.isStartable, let layout = ring.layout else {
                device.publish(nil)
                return
            }
            let queue = ring.queue ?? makeQueue(ring, layout, memory: memory)
            ring.queue = queue
            queues.append(ActiveQueue(vringIndex: ring.index, queue: queue, kickDescriptor: ring.kick?.rawValue ?? -1))
        }
        let firstPairReady = queues.count >= 2 && queues[0].vringIndex == 0 && queues[1].vringIndex == 1
        device.publish(firstPairReady ? queues : nil)
    }

    private func queueBuilder(_ ring: VhostUserVring, memory: GuestMemory) -> VirtqueueBuilder {
        VirtqueueBuilder(NegotiatedRingSettings(memory: memory, negotiatedFeatures: negotiatedFeatures ?? 0,
                                                callDescriptor: ring.call?.rawValue ?? -1, statistics: ring.statistics,
                                                dirtyLog: dirtyLoggingActive ? dirtyLog : nil, faultFlag: faultFlag))
    }

    /// A fresh queue for `ring`, from where it stands (`VirtqueueBuilder.make` says where a
    /// split ring resumes when the base disagrees with guest memory).
    private func makeQueue(_ ring: VhostUserVring, _ layout: MappedVirtqueueLayout, memory: GuestMemory) -> Virtqueue {
        let requested = ring.position
        let (queue, position) = queueBuilder(ring, memory: memory).make(layout, at: requested)
        ring.position = position
        switch queue {
        case .split(let split):
            if let usedBase = requested.usedBase {
                logger.debug("vring \(ring.index) queue rebuilt", metadata: [
                    "base": "\(requested.base)", "used_base": "\(usedBase)", "used_idx": "\(split.currentUsedIndex())",
                    "avail_idx": "\(split.currentAvailIndex())", "log_used": "\(split.logsUsedRing)"])
            } else {
                logger.debug("vring \(ring.index) queue built", metadata: [
                    "base": "\(requested.base)", "used_idx": "\(split.currentUsedIndex())", "avail_idx": "\(split.currentAvailIndex())",
                    "log_used": "\(split.logsUsedRing)", "ring": "\(split.describeRecentEntries(count: 12))"])
                if position.base != requested.base {
                    logger.warning("vring \(ring.index): base \(requested.base) but used index \(position.base) in guest memory; resuming from \(position.base)")
                }
            }
        case .packed(let packed):
            if packed.isBroken { logger.warning("vring \(ring.index): packed base 0x\(String(requested.base, radix: 16)) outside the ring") }
        }
        return queue
    }

    /// A read-only view of a split ring's indices in guest memory; never published.
    func observer(_ ring: VhostUserVring) -> SplitVirtqueue? {
        guard let memory, let layout = ring.layout?.split else { return nil }
        return queueBuilder(ring, memory: memory).observer(layout, at: ring.position.base)
    }

    // MARK: Snapshot

    func fill(_ info: inout VhostUserDeviceInfo) {
        info.negotiatedFeatures = negotiatedFeatures
        info.negotiatedProtocolFeatures = negotiatedProtocolFeatures
        info.mtu = mtu
        info.status = status
        info.memoryRegions = memoryRegions.map(\.descriptor)
        info.dirtyLogging = dirtyLoggingActive
        let protocolFeatures = protocolFeaturesNegotiated
        info.vrings = vrings.filter(\.touched).map { ring in
            if ring.layout?.packed != nil || ring.queue?.layout == .packed {
                return packedInfo(ring, protocolFeatures: protocolFeatures)
            }
            let current = ring.queue?.split ?? observer(ring)
            // A published queue's own indices belong to its poll thread. Nothing stays in
            // flight between bursts, so the used.idx it last released (read atomically from
            // guest memory) is its last avail and used index.
            let published = ring.queue != nil
            let currentUsed = current?.currentUsedIndex()
            let base = ring.position.base
            return vringInfo(ring, protocolFeatures: protocolFeatures, lastAvailIndex: published ? (currentUsed ?? base) : base,
                             lastUsedIndex: published ? currentUsed : nil,
                             currentAvailIndex: current?.currentAvailIndex(), currentUsedIndex: currentUsed)
        }
        info.activeQueuePairs = Set(vrings.filter(\.touched).map { $0.index / 2 }).count
    }

    /// A packed ring has no avail or used index in guest memory: show the position the
    /// poll thread last published (or the base), with its wrap counter.
    private func packedInfo(_ ring: VhostUserVring, protocolFeatures: Bool) -> VhostUserVringInfo {
        let position = ring.queue?.packed?.publishedPosition.load(ordering: .relaxed) ?? ring.position.base
        let (index, wrap) = PackedVirtqueue.decodeBase(position)
        var info = vringInfo(ring, protocolFeatures: protocolFeatures, lastAvailIndex: index,
                             lastUsedIndex: ring.queue != nil ? index : nil, currentAvailIndex: nil, currentUsedIndex: nil)
        info.ringLayout = .packed
        info.wrapCounter = wrap
        return info
    }

    private func vringInfo(_ ring: VhostUserVring, protocolFeatures: Bool, lastAvailIndex: UInt16, lastUsedIndex: UInt16?,
                           currentAvailIndex: UInt16?, currentUsedIndex: UInt16?) -> VhostUserVringInfo {
        VhostUserVringInfo(
            index: ring.index, size: ring.size, enabled: ring.isEnabled(protocolFeaturesNegotiated: protocolFeatures),
            started: ring.started, descriptorAddress: ring.addresses?.descriptor, availAddress: ring.addresses?.avail,
            usedAddress: ring.addresses?.used, logAddress: ring.addresses?.log, logUsed: ring.addresses?.logUsed ?? false,
            lastAvailIndex: lastAvailIndex, lastUsedIndex: lastUsedIndex,
            currentAvailIndex: currentAvailIndex, currentUsedIndex: currentUsedIndex,
            hasKick: ring.kick != nil, kickPolled: ring.kickPolled, hasCall: ring.call != nil, statistics: ring.statistics)
    }
}
