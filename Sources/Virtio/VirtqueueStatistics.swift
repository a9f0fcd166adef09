import Synchronization

/// Per-queue counters. One writer (the poll thread that owns the queue) adds a burst's local
/// sums once per burst with a relaxed load and store (no read-modify-write: there is only one
/// writer); the management plane reads them at any time with `snapshot()`.
public final class VirtqueueStatistics: Sendable {
    // One atomic per counter of `VirtqueueStatisticsSnapshot.counters` (the table below says
    // what each counts), added by `record` and read by `snapshot`.
    public let packets = Atomic<UInt64>(0)
    public let bytes = Atomic<UInt64>(0)
    public let dropsMalformedDescriptor = Atomic<UInt64>(0)
    public let dropsMalformedHeader = Atomic<UInt64>(0)
    public let dropsNoBuffers = Atomic<UInt64>(0)
    public let dropsTooLarge = Atomic<UInt64>(0)
    public let dropsTooShort = Atomic<UInt64>(0)
    public let dropsUnsupportedOffload = Atomic<UInt64>(0)
    public let invalidHeads = Atomic<UInt64>(0)
    public let ringErrors = Atomic<UInt64>(0)
    public let notificationsSent = Atomic<UInt64>(0)
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

    /// The counters now. Management side (any thread); the table drives everything after.
    public func snapshot() -> VirtqueueStatisticsSnapshot {
        var s = VirtqueueStatisticsSnapshot()
        s.packets = packets.load(ordering: .relaxed)
        s.bytes = bytes.load(ordering: .relaxed)
        s.dropsMalformedDescriptor = dropsMalformedDescriptor.load(ordering: .relaxed)
        s.dropsMalformedHeader = dropsMalformedHeader.load(ordering: .relaxed)
        s.dropsNoBuffers = dropsNoBuffers.load(ordering: .relaxed)
        s.dropsTooLarge = dropsTooLarge.load(ordering: .relaxed)
        s.dropsTooShort = dropsTooShort.load(ordering: .relaxed)
        s.dropsUnsupportedOffload = dropsUnsupportedOffload.load(ordering: .relaxed)
        s.invalidHeads = invalidHeads.load(ordering: .relaxed)
        s.ringErrors = ringErrors.load(ordering: .relaxed)
        s.notificationsSent = notificationsSent.load(ordering: .relaxed)
        s.bursts = bursts.load(ordering: .relaxed)
        return s
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

/// The counters at one moment, as plain values. The table is the family's schema: what each
/// counter means, its JSON field (in a vring's `counters` and a port's `rx`/`tx`) and its
/// /metrics series; a vhost-user port's metrics sum its guest transmit rings as direction rx
/// and its receive rings as tx.
public struct VirtqueueStatisticsSnapshot: Equatable, Sendable, CounterSnapshot {
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
    public var bursts: UInt64 = 0

    public init() {}

    public static let counters: [CounterDescriptor<Self>] = [
        .init(\.packets, json: "packets", .frames,
              "Frames moved (dequeued from a guest transmit ring, or delivered to a receive ring).", metric: .portPackets),
        .init(\.bytes, json: "bytes", .bytes, "Frame bytes moved, without the virtio-net header.", metric: .portBytes),
        .init(\.bursts, json: "bursts", .events, "Bursts that moved at least one entry.", metric: .ringBursts),
        .init(\.notificationsSent, json: "notifications_sent", .events, "Call eventfd writes.", metric: .ringNotifications),
        .init(\.dropsMalformedDescriptor, json: "drops_malformed_descriptor", .frames,
              "Chains that broke a ring rule (bad index, loop, unmapped, wrong direction, ...).",
              metric: .portDrops, .reason("malformed_descriptor")),
        .init(\.dropsMalformedHeader, json: "drops_malformed_header", .frames,
              "Transmitted frames whose virtio-net header asks for something invalid or not negotiated.",
              metric: .portDrops, .reason("malformed_header")),
        .init(\.dropsNoBuffers, json: "drops_no_buffers", .frames,
              "Receive side: frames dropped because the guest posted no (or not enough) buffers.",
              metric: .portDrops, .reason("no_buffers")),
        .init(\.dropsTooLarge, json: "drops_too_large", .frames,
              "Frames larger than the buffer meant to hold them (dataplane buffer, or a receive chain).",
              metric: .portDrops, .reason("too_large")),
        .init(\.dropsTooShort, json: "drops_too_short", .frames,
              "Frames shorter than an Ethernet header (14 bytes), or chains shorter than the net header.",
              metric: .portDrops, .reason("too_short")),
        .init(\.dropsUnsupportedOffload, json: "drops_unsupported_offload", .frames,
              "Receive side: frames needing an offload (checksum, GSO) the guest did not negotiate.",
              metric: .portDrops, .reason("unsupported_offload")),
        .init(\.invalidHeads, json: "invalid_heads", .events,
              "Avail entries skipped without a used entry: head index out of range, or a head already taken in the same burst (the guest submitted it twice).",
              metric: .ringInvalidHeads),
        .init(\.ringErrors, json: "ring_errors", .events,
              "Times the ring was stopped: avail.idx more than the ring size ahead, a packed buffer past the ring's lap, or 64 bursts in a row that ended at an invalid chain.", metric: .ringErrors),
    ]

    /// All drops together.
    public var drops: UInt64 { total(of: .portDrops) }
}

extension CounterMetricFamily {
    public static let ringBursts = CounterMetricFamily(
        "vhost_switch_port_bursts_total", help: "Bursts that moved at least one ring entry. " + directionHelp)
    public static let ringNotifications = CounterMetricFamily(
        "vhost_switch_port_notifications_total", help: "Call eventfd writes to the guest. " + directionHelp)
    public static let ringInvalidHeads = CounterMetricFamily(
        "vhost_switch_port_invalid_heads_total", help: "Avail entries skipped: head out of range or submitted twice. " + directionHelp)
    public static let ringErrors = CounterMetricFamily(
        "vhost_switch_port_ring_errors_total", help: "Times a ring was declared broken. " + directionHelp)
}
