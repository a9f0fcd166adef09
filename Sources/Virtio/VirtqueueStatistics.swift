import Synchronization

/// Per-queue counters. One writer (the poll thread that owns the queue) adds a burst's local
/// sums once per burst with a relaxed load and store (no read-modify-write: there is only one
/// writer); the management plane reads them at any time with `snapshot()`.
public final class VirtqueueStatistics: Sendable {
    /// Frames moved (dequeued from a guest transmit ring, or delivered to a receive ring).
    public let packets = Atomic<UInt64>(0)
    /// Frame bytes moved, without the virtio-net header.
    public let bytes = Atomic<UInt64>(0)
    /// Chains that broke a ring rule (bad index, loop, unmapped, wrong direction, ...).
    public let dropsMalformedDescriptor = Atomic<UInt64>(0)
    /// Transmitted frames whose virtio-net header asks for something invalid or not negotiated.
    public let dropsMalformedHeader = Atomic<UInt64>(0)
    /// Receive side: frames dropped because the guest posted no (or not enough) buffers.
    public let dropsNoBuffers = Atomic<UInt64>(0)
    /// Frames larger than the buffer meant to hold them (dataplane buffer, or a receive chain).
    public let dropsTooLarge = Atomic<UInt64>(0)
    /// Frames shorter than an Ethernet header (14 bytes), or chains shorter than the net header.
    public let dropsTooShort = Atomic<UInt64>(0)
    /// Receive side: frames needing an offload (checksum, GSO) the guest did not negotiate.
    public let dropsUnsupportedOffload = Atomic<UInt64>(0)
    /// Avail entries skipped without a used entry: head index out of range, or a head already
    /// taken in the same burst (the guest submitted it twice).
    public let invalidHeads = Atomic<UInt64>(0)
    /// Times the ring was declared broken (avail.idx more than the ring size ahead).
    public let ringErrors = Atomic<UInt64>(0)
    /// Call eventfd writes.
    public let notificationsSent = Atomic<UInt64>(0)
    /// Bursts that moved at least one entry.
    public let bursts = Atomic<UInt64>(0)

    public init() {}

    /// Adds one burst's sums. Single writer only. Inlined and borrowed: a copy of the sums is
    /// made with wider loads than they were stored with, and such a load waits for the store
    /// buffer to drain (seen in the poll thread's profile).
    @inlinable @inline(__always)
    public func record(_ burst: borrowing VirtqueueBurstCounters) {
        Self.add(packets, burst.packets)
        Self.add(bytes, burst.bytes)
        Self.add(dropsMalformedDescriptor, burst.dropsMalformedDescriptor)
        Self.add(dropsMalformedHeader, burst.dropsMalformedHeader)
        Self.add(dropsNoBuffers, burst.dropsNoBuffers)
        Self.add(dropsTooLarge, burst.dropsTooLarge)
        Self.add(dropsTooShort, burst.dropsTooShort)
        Self.add(dropsUnsupportedOffload, burst.dropsUnsupportedOffload)
        Self.add(invalidHeads, burst.invalidHeads)
        Self.add(ringErrors, burst.ringErrors)
        Self.add(notificationsSent, burst.notificationsSent)
        Self.add(bursts, 1)
    }

    @inlinable @inline(__always)
    static func add(_ counter: borrowing Atomic<UInt64>, _ amount: UInt64) {
        guard amount != 0 else { return }
        counter.store(counter.load(ordering: .relaxed) &+ amount, ordering: .relaxed)
    }

    public func snapshot() -> VirtqueueStatisticsSnapshot {
        VirtqueueStatisticsSnapshot(
            packets: packets.load(ordering: .relaxed),
            bytes: bytes.load(ordering: .relaxed),
            dropsMalformedDescriptor: dropsMalformedDescriptor.load(ordering: .relaxed),
            dropsMalformedHeader: dropsMalformedHeader.load(ordering: .relaxed),
            dropsNoBuffers: dropsNoBuffers.load(ordering: .relaxed),
            dropsTooLarge: dropsTooLarge.load(ordering: .relaxed),
            dropsTooShort: dropsTooShort.load(ordering: .relaxed),
            dropsUnsupportedOffload: dropsUnsupportedOffload.load(ordering: .relaxed),
            invalidHeads: invalidHeads.load(ordering: .relaxed),
            ringErrors: ringErrors.load(ordering: .relaxed),
            notificationsSent: notificationsSent.load(ordering: .relaxed),
            bursts: bursts.load(ordering: .relaxed))
    }
}

/// One burst's counts, summed in locals on the poll thread and recorded once.
public struct VirtqueueBurstCounters {
    public var packets: UInt64 = 0
    public var bytes: UInt64 = 0
    public var dropsMalformedDescriptor: UInt64 = 0
    public var dropsMalformedHeader: UInt64 = 0
    public var dropsNoBuffers: UInt64 = 0
    public var dropsTooLarge: UInt64 = 0
    public var dropsTooShort: UInt64 = 0
    public var dropsUnsupportedOffload: UInt64 = 0
    public var invalidHeads: UInt64 = 0
    public var ringErrors: UInt64 = 0
    public var notificationsSent: UInt64 = 0

    @inlinable public init() {}
}

/// The counters at one moment, as plain values.
public struct VirtqueueStatisticsSnapshot: Equatable, Sendable {
    public var packets: UInt64
    public var bytes: UInt64
    public var dropsMalformedDescriptor: UInt64
    public var dropsMalformedHeader: UInt64
    public var dropsNoBuffers: UInt64
    public var dropsTooLarge: UInt64
    public var dropsTooShort: UInt64
    public var dropsUnsupportedOffload: UInt64
    public var invalidHeads: UInt64
    public var ringErrors: UInt64
    public var notificationsSent: UInt64
    public var bursts: UInt64

    public init(packets: UInt64 = 0, bytes: UInt64 = 0, dropsMalformedDescriptor: UInt64 = 0, dropsMalformedHeader: UInt64 = 0,
                dropsNoBuffers: UInt64 = 0, dropsTooLarge: UInt64 = 0, dropsTooShort: UInt64 = 0,
                dropsUnsupportedOffload: UInt64 = 0, invalidHeads: UInt64 = 0, ringErrors: UInt64 = 0,
                notificationsSent: UInt64 = 0, bursts: UInt64 = 0) {
        self.packets = packets
        self.bytes = bytes
        self.dropsMalformedDescriptor = dropsMalformedDescriptor
        self.dropsMalformedHeader = dropsMalformedHeader
        self.dropsNoBuffers = dropsNoBuffers
        self.dropsTooLarge = dropsTooLarge
        self.dropsTooShort = dropsTooShort
        self.dropsUnsupportedOffload = dropsUnsupportedOffload
        self.invalidHeads = invalidHeads
        self.ringErrors = ringErrors
        self.notificationsSent = notificationsSent
        self.bursts = bursts
    }

    /// All drops together.
    public var drops: UInt64 {
        dropsMalformedDescriptor &+ dropsMalformedHeader &+ dropsNoBuffers &+ dropsTooLarge &+ dropsTooShort &+ dropsUnsupportedOffload
    }
}
