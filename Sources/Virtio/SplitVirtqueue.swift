import CVhostShims
import VhostSystem

/// The device side of one split virtqueue (VIRTIO 1.1 section 2.7) in guest memory.
///
/// Threading: one poll thread owns a queue at a time; nothing here is synchronised against
/// concurrent calls on the same queue (the dataplane serialises shared receive rings with
/// its own lock). Management reads (`currentAvailIndex`, `statistics`) are safe from any thread.
///
/// Every chain is completed in the burst that takes it off the avail ring, so nothing stays
/// in flight between bursts: `lastAvailIndex` is exactly what GET_VRING_BASE must return.
///
/// Per burst: one acquire load of avail.idx, used entries written with plain stores, one
/// release store of used.idx, one full fence, then the notify decision (EVENT_IDX's
/// vring_need_event, or VRING_AVAIL_F_NO_INTERRUPT).
public final class SplitVirtqueue: @unchecked Sendable {  // single owner thread, see above
    @usableFromInline static let availFlagNoInterrupt: UInt16 = 1
    @usableFromInline static let usedFlagNoNotify: UInt16 = 1
    /// Ethernet destination + source + type.
    public static let minimumFrameLength = 14

    public let layout: VirtqueueLayout
    /// Memory, features and what follows from them, call fd, counters, log, fault flag.
    public let settings: NegotiatedRingSettings

    @usableFromInline let size: UInt16
    @usableFromInline let mask: UInt16
    @usableFromInline let descriptors: UnsafeMutableRawPointer
    @usableFromInline let avail: UnsafeMutableRawPointer
    @usableFromInline let used: UnsafeMutableRawPointer
    /// Guest-physical address of the used ring, when its writes must be logged.
    @usableFromInline let usedLogAddress: UInt64
    @usableFromInline let logUsed: Bool
    /// Heads taken in the current burst (a head seen twice was submitted twice).
    @usableFromInline var claims: BurstClaims

    @usableFromInline var nextAvail: UInt16
    @usableFromInline var nextUsed: UInt16
    @usableFromInline var notificationsEnabled = true
    @usableFromInline var broken = false
    @usableFromInline var ringGuard: RingGuard

    /// The next avail entry to process: what GET_VRING_BASE returns.
    public var lastAvailIndex: UInt16 { nextAvail }
    /// The used.idx value this side last published.
    public var lastUsedIndex: UInt16 { nextUsed }
    /// True once the guest broke the ring (avail.idx more than the ring size ahead, or
    /// `RingWalkLimits.maxErrorBurstsInARow` bursts that ended at an invalid chain). A broken
    /// queue moves nothing until it is rebuilt; the session's fault flag was raised.
    public var isBroken: Bool { broken }
    /// Whether used-ring writes are dirty-logged (LOG_ALL, a log, and VHOST_VRING_F_LOG).
    public var logsUsedRing: Bool { logUsed }

    /// `layout` must have been mapped with `settings.memory`. `lastUsedIndex` defaults to
    /// `lastAvailIndex` (nothing in flight, as after GET_VRING_BASE).
    /// `observeOnly`: a view for reading the ring's indices that never writes guest memory
    /// (a stopped ring belongs to the front-end; an unlogged write there could be lost).
    public init(layout: VirtqueueLayout, settings: NegotiatedRingSettings, lastAvailIndex: UInt16, lastUsedIndex: UInt16? = nil,
                observeOnly: Bool = false) {
        self.layout = layout
        self.settings = settings
        size = layout.size
        mask = layout.size &- 1
        descriptors = layout.descriptorTable
        avail = layout.availRing
        used = layout.usedRing
        logUsed = settings.logData && layout.usedLogGuestAddress != nil
        usedLogAddress = layout.usedLogGuestAddress ?? 0
        nextAvail = lastAvailIndex
        nextUsed = lastUsedIndex ?? lastAvailIndex
        claims = BurstClaims(count: Int(layout.size))
        ringGuard = RingGuard(faultFlag: observeOnly ? nil : settings.faultFlag)
        // A polling back-end: the guest should not kick (a syscall per burst) until a poll
        // thread going to sleep asks for it.
        if !observeOnly { setGuestNotifications(enabled: false) }
    }

    deinit {
        claims.release()
    }

    // MARK: Ring fields

    /// avail.idx, acquire: the entries before it are visible once this is read.
    public func currentAvailIndex() -> UInt16 {
        // Safe: avail holds 6 + 2 * size mapped bytes, 2-byte aligned (VirtqueueLayout).
        UInt16(littleEndian: vhost_shims_load_acquire_u16(avail + 2))
    }

    /// used.idx as it is in guest memory.
    public func currentUsedIndex() -> UInt16 {
        // Safe: used holds 6 + 8 * size mapped bytes, 4-byte aligned (VirtqueueLayout).
        UInt16(littleEndian: vhost_shims_load_acquire_u16(used + 2))
    }

    /// True when the guest has posted entries this side has not processed.
    public func hasAvailableBuffers() -> Bool {
        !broken && currentAvailIndex() != nextAvail
    }

    /// Asks the guest to kick (enabled) or not to (disabled, while polling). Without
    /// EVENT_IDX this clears or sets VRING_USED_F_NO_NOTIFY; with it the driver ignores that
    /// flag, so enabling publishes avail_event = lastAvailIndex (kick on the next entry) and
    /// disabling leaves avail_event behind (VIRTIO 1.1 2.7.10). Callers going to sleep
    /// re-check `hasAvailableBuffers()` after a full fence.
    public func setGuestNotifications(enabled: Bool) {
        notificationsEnabled = enabled
        if settings.eventIndex {
            if enabled { publishAvailEvent() }
        } else {
            // Safe: used.flags is inside the checked used ring.
            vhost_shims_store_relaxed_u16(used, (enabled ? 0 : Self.usedFlagNoNotify).littleEndian)
            if logUsed { settings.log?.markGuestPhysical(usedLogAddress, length: 2) }
        }
    }

    @inlinable @inline(__always)
    func publishAvailEvent() {
        // Safe: avail_event is the last u16 of the checked used ring (4 + 8 * size).
        vhost_shims_store_relaxed_u16(used + 4 + 8 * Int(size), nextAvail.littleEndian)
        if logUsed { settings.log?.markGuestPhysical(usedLogAddress &+ 4 &+ 8 &* UInt64(size), length: 2) }
    }

    /// Loads avail.idx once for the burst and returns how many entries are pending, or nil
    /// (and marks the ring broken) if the guest claims more than the ring holds.
    @inlinable @inline(__always)
    func pendingAvailEntries(_ counters: inout VirtqueueBurstCounters) -> UInt16? {
        // Safe: avail.idx lies inside the checked avail ring.
        let availIndex = UInt16(littleEndian: vhost_shims_load_acquire_u16(avail + 2))
        let pending = availIndex &- nextAvail
        // 2.7.13.1: at most `size` entries can be outstanding. More means a broken or hostile
        // driver; DPDK refuses the ring too. Processing it would re-take heads in flight.
        guard pending <= size else {
            ringGuard.stop(broken: &broken, &counters)
            return nil
        }
        return pending
    }

    @inlinable @inline(__always)
    func availHead(at offset: UInt16) -> UInt16 {
        let slot = Int((nextAvail &+ offset) & mask)
        // Safe: slot < size and ring[size] u16 follows flags and idx in the checked avail ring.
        // A plain load is enough: the acquire load of avail.idx ordered it.
        return UInt16(littleEndian: avail.load(fromByteOffset: 4 &+ slot &* 2, as: UInt16.self))
    }

    /// Prefetch for a whole burst before it is processed: first the descriptors of the next
    /// `entries` chains, then (one more pass, whose loads now overlap instead of waiting one
    /// by one) the first lines of each chain's first buffer. The front-end's core
    /// wrote these lines; fetched one chain at a time, each miss is paid in full when the two
    /// cores are far apart (about 2x cycles per 64-byte packet there). Hints only: nothing
    /// read here is trusted (the walk checks everything again).
    @inlinable @inline(__always)
    func prefetchBurst(entries: UInt16, forWriting: Bool) {
        // The used entries this burst will write (8 per line), read early: most already hold
        // the values to write (see writeUsedEntry), and the others' stores then find the line.
        var i: UInt16 = 0
        while i < entries {
            // Safe: the slot is < size, inside the checked used ring (a hint in any case).
            vhost_shims_prefetch_read(used + (4 &+ Int((nextUsed &+ i) & mask) &* 8))
            i &+= 8
        }
        i = 0
        while i < entries {
            let head = availHead(at: i)
            // Safe: head < size, inside the checked descriptor table (a hint in any case).
            if head < size { vhost_shims_prefetch_read(descriptors + Int(head) &* 16) }
            i &+= 1
        }
        i = 0
        while i < entries {
            let head = availHead(at: i)
            i &+= 1
            guard head < size else { continue }
            // Safe: head < size; the table holds size * 16 mapped bytes.
            let descriptor = RingDescriptor(split: descriptors + Int(head) &* 16)
            guard descriptor.flags & RingDescriptor.flagIndirect == 0 else { continue }
            settings.translator.prefetchFrame(at: descriptor.address, headerSize: settings.headerSize, forWriting: forWriting)
        }
    }

    /// Writes used entry number `offset` after nextUsed (not yet published).
    @inlinable @inline(__always)
    func writeUsedEntry(at offset: UInt16, id: UInt16, length: UInt32) {
        let slot = Int((nextUsed &+ offset) & mask)
        // Safe: slot < size; entries are 8 bytes after flags and idx in the checked used ring.
        let entry = used + (4 &+ slot &* 8)
        // Unless it already holds these values (a driver that posts its heads in the same
        // order gets the same entries lap after lap): its cache line then stays with the driver.
        let element = (UInt64(id) | UInt64(length) &<< 32).littleEndian
        if entry.loadUnaligned(as: UInt64.self) != element {
            entry.storeBytes(of: UInt32(id).littleEndian, toByteOffset: 0, as: UInt32.self)
            entry.storeBytes(of: length.littleEndian, toByteOffset: 4, as: UInt32.self)
        }
    }

    @inlinable @inline(__always)
    func setUsedEntryLength(at offset: UInt16, length: UInt32) {
        let slot = Int((nextUsed &+ offset) & mask)
        // Safe: as in writeUsedEntry.
        (used + (4 &+ slot &* 8)).storeBytes(of: length.littleEndian, toByteOffset: 4, as: UInt32.self)
    }

    /// Ends a burst: commits `availTaken` avail entries and publishes `usedWritten` used
    /// entries with one release store, logs them, and notifies the guest if it asked.
    @inlinable @inline(__always)
    func finishBurst(availTaken: UInt16, usedWritten: UInt16, _ counters: inout VirtqueueBurstCounters) {
        nextAvail &+= availTaken
        if usedWritten != 0 {
            let oldUsed = nextUsed
            let newUsed = oldUsed &+ usedWritten
            if logUsed, let log = settings.log {
                // Entries first, then the index, like DPDK: the log must cover what QEMU copies.
                let first = UInt64(oldUsed & mask)
                let count = UInt64(usedWritten)
                let firstRun = min(count, UInt64(size) &- first)
                log.markGuestPhysical(usedLogAddress &+ 4 &+ first &* 8, length: firstRun &* 8)
                if firstRun < count { log.markGuestPhysical(usedLogAddress &+ 4, length: (count &- firstRun) &* 8) }
            }
            // Safe: used.idx lies in the checked used ring. Release: entries before index.
            vhost_shims_store_release_u16(used + 2, newUsed.littleEndian)
            if logUsed { settings.log?.markGuestPhysical(usedLogAddress &+ 2, length: 2) }
            nextUsed = newUsed
            if settings.eventIndex && notificationsEnabled { publishAvailEvent() }
            // The guest may change used_event/flags concurrently: order our used.idx store
            // before reading its wishes (the store-load pair needs a full fence).
            vhost_shims_fence_seq_cst()
            if settings.callDescriptor >= 0 && guestWantsInterrupt(oldUsed: oldUsed, newUsed: newUsed) {
                EventFD.signal(raw: settings.callDescriptor)
                counters.notificationsSent &+= 1
            }
        } else if availTaken != 0 && settings.eventIndex && notificationsEnabled {
            publishAvailEvent()
        }
        // Both bursts reach here only having counted something (every avail entry taken and
        // every frame offered is counted): no test of each counter (see PackedVirtqueue.finishBurst).
        settings.statistics.record(counters)
    }

    /// vring_need_event (VIRTIO 1.1 2.7.10): true when `usedEvent` lies in (oldUsed, newUsed],
    /// i.e. used.idx moved past the index the driver asked to be interrupted after.
    @inlinable @inline(__always)
    public static func needsEvent(usedEvent: UInt16, newUsed: UInt16, oldUsed: UInt16) -> Bool {
        newUsed &- usedEvent &- 1 < newUsed &- oldUsed
    }

    /// VIRTIO 1.1 2.7.7.2 / 2.7.10: with EVENT_IDX, vring_need_event(used_event, new, old);
    /// otherwise unless the driver set VRING_AVAIL_F_NO_INTERRUPT.
    @inlinable @inline(__always)
    func guestWantsInterrupt(oldUsed: UInt16, newUsed: UInt16) -> Bool {
        if settings.eventIndex {
            // Safe: used_event is the last u16 of the checked avail ring (4 + 2 * size).
            let usedEvent = UInt16(littleEndian: vhost_shims_load_relaxed_u16(avail + 4 + 2 * Int(size)))
            return Self.needsEvent(usedEvent: usedEvent, newUsed: newUsed, oldUsed: oldUsed)
        }
        // Safe: avail.flags is the first u16 of the checked avail ring.
        let flags = UInt16(littleEndian: vhost_shims_load_relaxed_u16(avail))
        return flags & Self.availFlagNoInterrupt == 0
    }
}

// MARK: Diagnostics

extension SplitVirtqueue {
    /// The `count` used entries before used.idx as "id:length" (oldest first), and the
    /// `count` avail heads before avail.idx, for debug logs at ring hand-over (migration).
    public func describeRecentEntries(count: Int) -> String {
        let usedIndex = currentUsedIndex()
        let availIndex = currentAvailIndex()
        let n = min(count, Int(size))
        var usedEntries: [String] = []
        var availHeads: [String] = []
        for back in stride(from: n, to: 0, by: -1) {
            let usedSlot = Int((usedIndex &- UInt16(back)) & mask)
            // Safe: slot < size; entries are 8 bytes after flags and idx in the checked used ring.
            let id = UInt32(littleEndian: (used + 4 + usedSlot * 8).loadUnaligned(as: UInt32.self))
            let length = UInt32(littleEndian: (used + 8 + usedSlot * 8).loadUnaligned(as: UInt32.self))
            usedEntries.append("\(id):\(length)")
            let availSlot = Int((availIndex &- UInt16(back)) & mask)
            // Safe: slot < size; the ring follows flags and idx in the checked avail ring.
            availHeads.append("\(UInt16(littleEndian: (avail + 4 + availSlot * 2).loadUnaligned(as: UInt16.self)))")
        }
        return "used.idx=\(usedIndex) used=[\(usedEntries.joined(separator: " "))] avail.idx=\(availIndex) avail=[\(availHeads.joined(separator: " "))]"
    }
}
