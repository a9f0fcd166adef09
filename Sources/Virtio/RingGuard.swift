import VhostSystem

/// How much of a guest's ring one burst may walk, so that no ring can hold a poll thread
/// (and every other port it serves) for long: UNTRUSTED-INPUT.md, "work per burst".
public enum RingWalkLimits {
    /// Descriptors one chain may have, ring and indirect together: QEMU's VIRTQUEUE_MAX_SIZE
    /// and the kernel's UIO_MAXIOV. Linux drivers use at most MAX_SKB_FRAGS + 2.
    public static let maxChainDescriptors = 1024
    /// Descriptors walked per burst: no new chain is started past this. 32 frames of 64 KiB
    /// in 1.5 KiB mergeable buffers need about 1,400.
    public static let maxDescriptorsPerBurst = 2048
    /// Bursts in a row that ended at an invalid chain before the ring is stopped for good.
    public static let maxErrorBurstsInARow: UInt32 = 64
}

/// What a ring's bursts tell about its guest. A burst ends at the first invalid chain (a
/// loop, an unmapped or wrong-direction buffer, a bad head or id); a ring whose bursts keep
/// ending that way is stopped and its session's fault flag raised, so the control thread
/// closes that session: the guest loses its own port and nothing else.
@usableFromInline
struct RingGuard {
    @usableFromInline var errorBurstsInARow: UInt32 = 0
    @usableFromInline let faultFlag: GuestFaultFlag?

    @usableFromInline
    init(faultFlag: GuestFaultFlag?) { self.faultFlag = faultFlag }

    /// Call at every burst's end: `invalid` when it ended at an invalid chain. Stops the
    /// ring (`broken`) when too many bursts in a row did.
    @inlinable @inline(__always)
    mutating func burstEnded(atInvalidChain invalid: Bool, broken: inout Bool, _ counters: inout VirtqueueBurstCounters) {
        guard invalid || errorBurstsInARow != 0 else { return }
        guard invalid else {
            errorBurstsInARow = 0
            return
        }
        errorBurstsInARow &+= 1
        if errorBurstsInARow >= RingWalkLimits.maxErrorBurstsInARow { stop(broken: &broken, &counters) }
    }

    /// Stops the ring (a streak, or a rule that breaks it at once) and tells the control thread.
    @inlinable
    func stop(broken: inout Bool, _ counters: inout VirtqueueBurstCounters) {
        broken = true
        counters.ringErrors &+= 1
        faultFlag?.raise(.ringStopped)
    }
}
