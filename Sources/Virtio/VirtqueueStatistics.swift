/// Per-queue counters. One writer (the poll thread that owns the queue) adds a burst's local
/// sums once per burst; the management plane reads them at any time with `snapshot()`. They
/// are kept in one block shaped like `VirtqueueStatisticsSnapshot` (`CounterCells`).
public final class VirtqueueStatistics: @unchecked Sendable {  // every access to `cells` is a relaxed atomic
    @usableFromInline let cells = CounterCells<VirtqueueStatisticsSnapshot>()

    public init() {}

    /// Adds one burst's sums and counts the burst. Single writer only. Inlined and borrowed: a
    /// copy of the sums is made with wider loads than they were stored with, and such a load
    /// waits for the store buffer to drain (seen in the poll thread's profile). Written out
    /// field by field for that reason: the hot path takes no key path.
    @inlinable @inline(__always)
    public func record(_ burst: borrowing VirtqueueBurstCounters) {
        let block = cells.block
        // Unsafe: each address is a stored UInt64 field of the block (the `&` of a stored
        // property through `pointee` is its own address).
        cells.add(&block.pointee.packets, burst.packets)
        cells.add(&block.pointee.bytes, burst.bytes)
        cells.add(&block.pointee.dropsMalformedDescriptor, burst.dropsMalformedDescriptor)
        cells.add(&block.pointee.dropsMalformedHeader, burst.dropsMalformedHeader)
        cells.add(&block.pointee.dropsNoBuffers, burst.dropsNoBuffers)
        cells.add(&block.pointee.dropsTooLarge, burst.dropsTooLarge)
        cells.add(&block.pointee.dropsTooShort, burst.dropsTooShort)
        cells.add(&block.pointee.dropsUnsupportedOffload, burst.dropsUnsupportedOffload)
        cells.add(&block.pointee.invalidHeads, burst.invalidHeads)
        cells.add(&block.pointee.ringErrors, burst.ringErrors)
        cells.add(&block.pointee.notificationsSent, burst.notificationsSent)
        cells.add(&block.pointee.bursts, 1)
    }

    /// The poll thread's cycles on one of this ring's bursts (the ring's owner thread only).
    @inlinable @inline(__always)
    public func recordBusyCycles(_ cycles: UInt64) {
        // Unsafe: a stored UInt64 field of the block, as in `record`.
        cells.add(&cells.block.pointee.busyCycles, cycles)
    }

    /// The counters now. Management side (any thread).
    public func snapshot() -> VirtqueueStatisticsSnapshot { cells.snapshot() }
}

/// One burst's counts, summed in locals on the poll thread and recorded once: the snapshot's
/// fields (its `bursts` stays 0 there; `record` counts the burst).
public typealias VirtqueueBurstCounters = VirtqueueStatisticsSnapshot

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
    public var busyCycles: UInt64 = 0

    @inlinable public init() {}

    public static let counters: [CounterDescriptor<Self>] = [
        .init(\.packets, json: "packets", .frames,
              "Frames moved (dequeued from a guest transmit ring, or delivered to a receive ring).", metric: .portPackets),
        .init(\.bytes, json: "bytes", .bytes, "Frame bytes moved, without the virtio-net header.", metric: .portBytes),
        .init(\.bursts, json: "bursts", .events, "Bursts that moved at least one entry.", metric: .ringBursts),
        .init(\.notificationsSent, json: "notifications_sent", .events, "Call eventfd writes.", metric: .ringNotifications),
        .drop(\.dropsMalformedDescriptor, "malformed_descriptor",
              "Chains that broke a ring rule (bad index, loop, unmapped, wrong direction, ...)."),
        .drop(\.dropsMalformedHeader, "malformed_header",
              "Transmitted frames whose virtio-net header asks for something invalid or not negotiated."),
        .drop(\.dropsNoBuffers, "no_buffers",
              "Receive side: frames dropped because the guest posted no (or not enough) buffers."),
        .drop(\.dropsTooLarge, "too_large",
              "Frames larger than the buffer meant to hold them (dataplane buffer, or a receive chain)."),
        .drop(\.dropsTooShort, "too_short",
              "Frames shorter than an Ethernet header (14 bytes), or chains shorter than the net header."),
        .drop(\.dropsUnsupportedOffload, "unsupported_offload",
              "Receive side: frames needing an offload (checksum, GSO) the guest did not negotiate."),
        .init(\.invalidHeads, json: "invalid_heads", .events,
              "Avail entries skipped without a used entry: head index out of range, or a head already taken in the same burst (the guest submitted it twice).",
              metric: .ringInvalidHeads),
        .init(\.busyCycles, json: "busy_cycles", .cycles,
              "TSC cycles its poll thread spent on this ring's bursts (taking them, switching them, handing them on): with the thread's own busy and idle cycles, the ring's share of the thread (OVS's pmd-rxq-show usage). Guest transmit rings only.",
              metric: .ringBusyCycles),
        .init(\.ringErrors, json: "ring_errors", .events,
              "Times the ring was stopped: avail.idx more than the ring size ahead, a packed buffer past the ring's lap, or 64 bursts in a row that ended at an invalid chain.", metric: .ringErrors),
    ]

    /// All drops together.
    public var drops: UInt64 { total(of: .portDrops) }
}

extension CounterMetricFamily {
    public static let ringBursts = port("bursts", help: "Bursts that moved at least one ring entry.")
    public static let ringNotifications = port("notifications", help: "Call eventfd writes to the guest.")
    public static let ringInvalidHeads = port("invalid_heads", help: "Avail entries skipped: head out of range or submitted twice.")
    public static let ringErrors = port("ring_errors", help: "Times a ring was declared broken.")
    public static let ringBusyCycles = port("busy_cycles", help: "TSC cycles the poll thread spent on the port's receive queues' bursts.")
}
