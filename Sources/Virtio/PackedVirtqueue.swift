import CVhostShims
import Synchronization
import VhostSystem

/// The device side of one packed virtqueue (VIRTIO 1.1 section 2.8) in guest memory, with
/// the same surface and the same drop and counter rules as `SplitVirtqueue`.
///
/// Threading: one poll thread owns a queue at a time (as for the split ring). Management
/// reads (`publishedPosition`, `statistics`) are safe from any thread.
///
/// A descriptor is available when its AVAIL flag equals our avail wrap counter and its USED
/// flag does not (2.8.1). Every buffer is completed in the burst that takes it, in ring
/// order, so used descriptors land where their buffers started (IN_ORDER holds) and nothing
/// stays in flight between bursts. Per burst: used descriptors written with id and len
/// first and each flags store a release, the burst's first used flags stored last, so the
/// driver (which reads used descriptors in order) sees whole entries only; then one full
/// fence and the interrupt decision from the driver event suppression area (2.8.10).
public final class PackedVirtqueue: @unchecked Sendable {  // single owner thread, see above
    @usableFromInline static let flagAvail: UInt16 = 1 << 7
    @usableFromInline static let flagUsed: UInt16 = 1 << 15
    @usableFromInline static let eventEnable: UInt16 = 0
    @usableFromInline static let eventDisable: UInt16 = 1
    @usableFromInline static let eventDescriptor: UInt16 = 2
    /// Ethernet destination + source + type.
    public static let minimumFrameLength = 14

    public let layout: PackedVirtqueueLayout
    /// Memory, features and what follows from them, call fd, counters, log, fault flag.
    public let settings: NegotiatedRingSettings
    /// The position (avail index | wrap << 15) after the last burst, for management reads.
    public let publishedPosition = Atomic<UInt16>(0)

    @usableFromInline let size: UInt16
    @usableFromInline let ring: UnsafeMutableRawPointer
    @usableFromInline let driverEvent: UnsafeMutableRawPointer
    @usableFromInline let deviceEvent: UnsafeMutableRawPointer
    @usableFromInline let logRing: Bool
    @usableFromInline let descriptorLogAddress: UInt64
    @usableFromInline let deviceEventLogAddress: UInt64
    /// Buffer ids taken in the current burst (an id seen twice was submitted twice).
    @usableFromInline var claims: BurstClaims
    /// The used descriptors of the frame being received (written only once it is placed, so
    /// a frame that stops half-way leaves the ring as it was).
    @usableFromInline let pendingIDs: UnsafeMutablePointer<UInt16>
    @usableFromInline let pendingLengths: UnsafeMutablePointer<UInt32>
    @usableFromInline let pendingSlots: UnsafeMutablePointer<UInt16>

    @usableFromInline var nextAvail: UInt16
    @usableFromInline var availWrap: Bool
    @usableFromInline var nextUsed: UInt16
    @usableFromInline var usedWrap: Bool
    /// Where the burst's first used descriptor went (its flags are stored last).
    @usableFromInline var firstUsedSlot: UInt16 = 0
    @usableFromInline var firstUsedFlags: UInt16 = 0
    @usableFromInline var notificationsEnabled = true
    @usableFromInline var broken = false
    @usableFromInline var ringGuard: RingGuard

    /// The next ring slot to look at (0 ..< size): with `availWrapCounter`, what GET_VRING_BASE returns.
    public var lastAvailIndex: UInt16 { nextAvail }
    public var availWrapCounter: Bool { availWrap }
    /// The ring slot the next used descriptor goes to.
    public var lastUsedIndex: UInt16 { nextUsed }
    public var usedWrapCounter: Bool { usedWrap }
    /// vhost-user's encoding of the position (like DPDK): bits 0-14 the avail index, bit 15 the wrap counter.
    public var vringBase: UInt16 { Self.encodeBase(index: nextAvail, wrap: availWrap) }
    /// The used position in the same encoding (QEMU takes it in GET_VRING_BASE's upper 16 bits).
    public var usedVringBase: UInt16 { Self.encodeBase(index: nextUsed, wrap: usedWrap) }
    /// True once the guest broke the ring (a chain that does not end within the ring's
    /// available slots, `RingWalkLimits.maxErrorBurstsInARow` bursts that ended at an invalid
    /// buffer) or the base was outside the ring. A broken queue moves nothing until it is
    /// rebuilt; the session's fault flag was raised.
    public var isBroken: Bool { broken }
    /// Whether ring writes are dirty-logged (LOG_ALL, a log, and VHOST_VRING_F_LOG).
    public var logsUsedRing: Bool { logRing }

    @inlinable
    public static func encodeBase(index: UInt16, wrap: Bool) -> UInt16 { index & 0x7fff | (wrap ? 0x8000 : 0) }
    @inlinable
    public static func decodeBase(_ base: UInt16) -> (index: UInt16, wrap: Bool) { (base & 0x7fff, base & 0x8000 != 0) }

    /// `layout` must have been mapped with `settings.memory`. The used position defaults to
    /// the avail position (nothing in flight, as after GET_VRING_BASE); a new ring starts at 0
    /// with both wrap counters set (2.8.1).
    public init(layout: PackedVirtqueueLayout, settings: NegotiatedRingSettings, lastAvailIndex: UInt16,
                availWrapCounter: Bool = true, lastUsedIndex: UInt16? = nil, usedWrapCounter: Bool? = nil) {
        self.layout = layout
        self.settings = settings
        size = layout.size
        ring = layout.descriptorRing
        driverEvent = layout.driverEvent
        deviceEvent = layout.deviceEvent
        logRing = settings.logData && layout.descriptorLogGuestAddress != nil && layout.deviceEventLogGuestAddress != nil
        descriptorLogAddress = layout.descriptorLogGuestAddress ?? 0
        deviceEventLogAddress = layout.deviceEventLogGuestAddress ?? 0
        nextAvail = lastAvailIndex
        availWrap = availWrapCounter
        nextUsed = lastUsedIndex ?? lastAvailIndex
        usedWrap = usedWrapCounter ?? availWrapCounter
        let count = Int(layout.size)
        claims = BurstClaims(count: count)
        ringGuard = RingGuard(faultFlag: settings.faultFlag)
        pendingIDs = .allocate(capacity: count)
        pendingIDs.initialize(repeating: 0, count: count)
        pendingLengths = .allocate(capacity: count)
        pendingLengths.initialize(repeating: 0, count: count)
        pendingSlots = .allocate(capacity: count)
        pendingSlots.initialize(repeating: 0, count: count)
        // A position outside the ring cannot be used (SET_VRING_BASE is guest input).
        if nextAvail >= size || nextUsed >= size {
            nextAvail = 0
            nextUsed = 0
            var counters = VirtqueueBurstCounters()
            ringGuard.stop(broken: &broken, &counters)
            settings.statistics.record(counters)
        }
        publishedPosition.store(Self.encodeBase(index: nextAvail, wrap: availWrap), ordering: .relaxed)
        // A polling back-end: the guest should not kick until a poll thread going to sleep asks.
        setGuestNotifications(enabled: false)
    }

    deinit {
        claims.release()
        pendingIDs.deallocate()
        pendingLengths.deallocate()
        pendingSlots.deallocate()
    }

    // MARK: Ring fields

    /// The flags of the descriptor in `slot`, acquire: its other fields (and the rest of its
    /// chain, written before) are visible once this is read.
    @inlinable @inline(__always)
    func descriptorFlags(_ slot: UInt16) -> UInt16 {
        // Safe: slot < size; flags is the u16 at 14 of a 16-byte entry in the checked ring.
        UInt16(littleEndian: vhost_shims_load_acquire_u16(ring + (Int(slot) &* 16 &+ 14)))
    }

    /// 2.8.1: available when AVAIL matches the wrap counter and USED does not.
    @inlinable @inline(__always)
    func isAvailable(slot: UInt16, wrap: Bool) -> Bool {
        let flags = descriptorFlags(slot)
        return (flags & Self.flagAvail != 0) == wrap && (flags & Self.flagUsed != 0) != wrap
    }

    /// True when the guest has made a buffer available that this side has not processed.
    public func hasAvailableBuffers() -> Bool {
        !broken && isAvailable(slot: nextAvail, wrap: availWrap)
    }

    /// Asks the guest to kick (enabled) or not (disabled, while polling), through the device
    /// event suppression area (2.8.10): DISABLE; or ENABLE, or with EVENT_IDX DESC at our
    /// next avail position. Callers going to sleep re-check `hasAvailableBuffers()` after a fence.
    public func setGuestNotifications(enabled: Bool) {
        notificationsEnabled = enabled
        if enabled && settings.eventIndex {
            publishAvailEvent()
            vhost_shims_fence_release()
            // Safe: the device event area holds 4 checked bytes; flags is the u16 at 2.
            vhost_shims_store_relaxed_u16(deviceEvent + 2, Self.eventDescriptor.littleEndian)
        } else {
            // Safe: as above.
            vhost_shims_store_relaxed_u16(deviceEvent + 2, (enabled ? Self.eventEnable : Self.eventDisable).littleEndian)
        }
        if logRing { settings.log?.markGuestPhysical(deviceEventLogAddress, length: 4) }
    }

    @inlinable @inline(__always)
    func publishAvailEvent() {
        // Safe: off_wrap is the u16 at 0 of the checked device event area.
        vhost_shims_store_relaxed_u16(deviceEvent, Self.encodeBase(index: nextAvail, wrap: availWrap).littleEndian)
        if logRing { settings.log?.markGuestPhysical(deviceEventLogAddress, length: 2) }
    }

    /// Fetches what the burst will touch before it starts, so that its stores find their lines
    /// owned (a store that misses holds up every store behind it, and then any load that
    /// cannot be forwarded from them). Ring lines of the next `slots` available descriptors
    /// first (read: the used descriptors go there at the burst's end), then their buffers
    /// (`prefetchFrame`). Hints only: descriptors are read again, and checked, when taken.
    @inlinable @inline(__always)
    func prefetchBurst(slots: Int, forWriting: Bool) {
        let count = min(slots, Int(size))
        var slot = Int(nextAvail)
        var i = 0
        while i < count {
            // Safe: slot < size, inside the checked ring (a hint in any case).
            vhost_shims_prefetch_read(ring + slot &* 16)
            slot &+= 4
            if slot >= Int(size) { slot &-= Int(size) }
            i &+= 4
        }
        var position = nextAvail
        var wrap = availWrap
        i = 0
        while i < count && isAvailable(slot: position, wrap: wrap) {
            // Safe: position < size; the entry's 16 bytes are inside the checked ring.
            let descriptor = RingDescriptor(packed: ring + Int(position) &* 16)
            if descriptor.flags & RingDescriptor.flagIndirect == 0 {
                settings.translator.prefetchFrame(at: descriptor.address, headerSize: settings.headerSize, forWriting: forWriting)
            }
            advance(&position, &wrap, by: 1)
            i &+= 1
        }
    }

    /// Writes the burst's first `count` pending used descriptors (pendingIDs, pendingLengths,
    /// pendingSlots) in one run after the copies: a store into a ring line the front-end
    /// holds waits for that line, and interleaved with the copies it would hold up every
    /// store queued behind it. The used position is kept in locals meanwhile (see
    /// `enqueueBurst`). The first entry's flags wait for `finishBurst`.
    @inlinable @inline(__always)
    func writePendingUsed(_ count: Int) {
        var slot = nextUsed
        var wrap = usedWrap
        var i = 0
        while i < count {
            // 2.8.2: a used descriptor has AVAIL and USED both equal to the used wrap counter.
            let flags = wrap ? (Self.flagAvail | Self.flagUsed) : 0
            // Safe: slot < size; the entry's 16 bytes are inside the checked ring. i < count <=
            // size, the pending tables' length.
            let entry = ring + Int(slot) &* 16
            entry.storeBytes(of: pendingLengths[i].littleEndian, toByteOffset: 8, as: UInt32.self)
            entry.storeBytes(of: pendingIDs[i].littleEndian, toByteOffset: 12, as: UInt16.self)
            if i == 0 {
                firstUsedSlot = slot
                firstUsedFlags = flags
            } else {
                // Safe: as above. Release: id and len before flags.
                vhost_shims_store_release_u16(entry + 14, flags.littleEndian)
            }
            if logRing { settings.log?.markGuestPhysical(descriptorLogAddress &+ UInt64(slot) &* 16, length: 16) }
            advance(&slot, &wrap, by: pendingSlots[i])
            i &+= 1
        }
        nextUsed = slot
        usedWrap = wrap
    }

    @inlinable @inline(__always)
    func advance(_ index: inout UInt16, _ wrap: inout Bool, by slots: UInt16) {
        // Both < size <= 32768: the sum fits in 16 bits.
        index &+= slots
        if index >= size {
            index &-= size
            wrap.toggle()
        }
    }

    /// Ends a burst: publishes the used descriptors (first flags last, release), asks for
    /// kicks at the new position, interrupts the guest if it asked, and records the counters.
    /// Both bursts reach here only having counted something (every buffer taken and every
    /// frame offered is counted), so they are recorded without testing each counter (a test
    /// that read them back in wider loads than they were stored with, and waited for the
    /// store buffer).
    @inlinable @inline(__always)
    func finishBurst(usedWritten: Int, oldUsed: UInt16, availTaken: Bool, _ counters: inout VirtqueueBurstCounters) {
        if usedWritten != 0 {
            // Safe: firstUsedSlot < size, set by writePendingUsed this burst.
            vhost_shims_store_release_u16(ring + (Int(firstUsedSlot) &* 16 &+ 14), firstUsedFlags.littleEndian)
        }
        if availTaken {
            if settings.eventIndex && notificationsEnabled { publishAvailEvent() }
            publishedPosition.store(Self.encodeBase(index: nextAvail, wrap: availWrap), ordering: .relaxed)
        }
        if usedWritten != 0 {
            // Order the used flags before reading the driver's wishes (store-load: full fence).
            vhost_shims_fence_seq_cst()
            if settings.callDescriptor >= 0 && guestWantsInterrupt(oldUsed: oldUsed) {
                EventFD.signal(raw: settings.callDescriptor)
                counters.notificationsSent &+= 1
            }
        }
        settings.statistics.record(counters)
    }

    /// 2.8.10: DISABLE: no; ENABLE: yes; DESC (with EVENT_IDX): when the used position moved
    /// past the driver's off_wrap during this burst (vring_need_event on positions made linear
    /// across the wrap, as DPDK does). Unknown flag values interrupt (never lose a wake-up).
    @inlinable @inline(__always)
    func guestWantsInterrupt(oldUsed: UInt16) -> Bool {
        // Safe: the driver event area holds 4 checked bytes: off_wrap u16, flags u16.
        let flags = UInt16(littleEndian: vhost_shims_load_relaxed_u16(driverEvent + 2))
        if flags == Self.eventDisable { return false }
        guard flags == Self.eventDescriptor && settings.eventIndex else { return true }
        let offWrap = UInt16(littleEndian: vhost_shims_load_relaxed_u16(driverEvent))
        return Self.needsEvent(offWrap: offWrap, oldUsed: oldUsed, newUsed: nextUsed, usedWrap: usedWrap, size: size)
    }

    /// The packed ring's event test: `oldUsed` and `newUsed` are slots (newUsed with wrap
    /// counter `usedWrap`), at most one lap apart; `offWrap` the driver's event position.
    @inlinable @inline(__always)
    public static func needsEvent(offWrap: UInt16, oldUsed: UInt16, newUsed: UInt16, usedWrap: Bool, size: UInt16) -> Bool {
        var old = Int(oldUsed)
        let new = Int(newUsed)
        if new <= old { old &-= Int(size) }
        var event = Int(offWrap & 0x7fff)
        if (offWrap & 0x8000 != 0) != usedWrap { event &-= Int(size) }
        return UInt16(truncatingIfNeeded: new &- event &- 1) < UInt16(truncatingIfNeeded: new &- old)
    }
}
