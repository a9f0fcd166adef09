import VhostSystem
import Virtio

/// Counters of one kernel port (af-packet or af-xdp), in one block shaped like `Snapshot` (`CounterCells`).
/// Each group has one writer, which adds a burst's local sums once per burst with a relaxed
/// load and store (no read-modify-write): receive counters by the poll thread serving the
/// port (`recordReceived`, `recordBusyCycles`), transmit counters by whichever poll thread holds the port's
/// transmit side, alone or under its TransmitLock (`recordTransmitted`), kernel counters by
/// the control side (`PacketSocketPort.collectKernelStatistics`). The management plane
/// reads them at any time with `snapshot()`. The object outlives socket swaps
/// (`reopened()`), so the counts continue across an interface being re-created.
public final class PacketSocketPortStatistics: @unchecked Sendable {  // every access to `cells` is a relaxed atomic
    let cells = CounterCells<Snapshot>()

    public init() {}

    /// The counters at one moment. The table is the family's schema: what each counter
    /// means, its field in a port's `kernel` stats (the API's contract names nine of them)
    /// and its /metrics series, under the same names as a vhost-user port's rings where the
    /// meaning is the same (packets, bytes, drops by reason).
    public struct Snapshot: Sendable, Equatable, CounterSnapshot {
        public var receivedPackets: UInt64 = 0
        public var receivedBytes: UInt64 = 0
        public var receiveDropsTooLarge: UInt64 = 0
        public var receiveDropsTruncated: UInt64 = 0
        public var receiveDropsMalformed: UInt64 = 0
        public var receivedChecksumPending: UInt64 = 0
        public var transmittedPackets: UInt64 = 0
        public var transmittedBytes: UInt64 = 0
        public var transmitDropsTooLarge: UInt64 = 0
        public var transmitDropsTooShort: UInt64 = 0
        public var transmitDropsUnsupportedOffload: UInt64 = 0
        public var transmitDropsRingFull: UInt64 = 0
        public var transmitDropsKernel: UInt64 = 0
        public var transmitSendErrors: UInt64 = 0
        public var receiveRingDrops: UInt64 = 0
        public var receiveRingFreezes: UInt64 = 0
        public var receiveBusyCycles: UInt64 = 0

        public init() {}

        public static let counters: [CounterDescriptor<Self>] = [
            .init(\.receivedPackets, json: "rx_packets", .frames, "Frames received from the interface.", metric: .portPackets, .rx),
            .init(\.receivedBytes, json: "rx_bytes", .bytes, "Frame bytes received from the interface.", metric: .portBytes, .rx),
            .init(\.receiveDropsTooLarge, json: "rx_drops_too_large", .frames, "Received frames longer than the dataplane buffer.",
                  metric: .portDrops, .rx, .reason("too_large")),
            .init(\.receiveDropsTruncated, json: nil, .frames, "Received frames the ring cut short (longer than a receive block).",
                  metric: .portDrops, .rx, .reason("truncated")),
            .init(\.receiveDropsMalformed, json: nil, .frames, "Runts and ring entries with offsets outside their block.",
                  metric: .portDrops, .rx, .reason("malformed")),
            .init(\.receiveRingDrops, json: "rx_ring_drops", .frames,
                  "Frames the kernel dropped because the receive ring was full (tp_drops).", metric: .portDrops, .rx, .reason("ring_full")),
            .init(\.receiveRingFreezes, json: nil, .events, "Times the receive ring froze because it was full (tp_freeze_q_cnt).",
                  metric: .kernelRingFreezes, .rx),
            .init(\.receivedChecksumPending, json: nil, .frames,
                  "Received frames whose L4 checksum was left to offload by a local sender (TP_STATUS_CSUMNOTREADY); forwarded as they are.",
                  metric: .kernelChecksumPending, .rx),
            .init(\.transmittedPackets, json: "tx_packets", .frames, "Frames sent to the interface.", metric: .portPackets, .tx),
            .init(\.transmittedBytes, json: "tx_bytes", .bytes, "Frame bytes sent to the interface.", metric: .portBytes, .tx),
            .init(\.transmitDropsTooLarge, json: nil, .frames, "Frames longer than the interface takes (MTU + 18) or than their buffer.",
                  metric: .portDrops, .tx, .reason("too_large")),
            .init(\.transmitDropsTooShort, json: nil, .frames, "Frames shorter than an Ethernet header.",
                  metric: .portDrops, .tx, .reason("too_short")),
            .init(\.transmitDropsUnsupportedOffload, json: nil, .frames,
                  "Frames whose virtio-net header asks for an offload the socket cannot do, or does not match the frame.",
                  metric: .portDrops, .tx, .reason("unsupported_offload")),
            .init(\.transmitDropsRingFull, json: "tx_drops_ring_full", .frames, "Frames dropped because every transmit ring slot was still in flight.",
                  metric: .portDrops, .tx, .reason("ring_full")),
            .init(\.transmitDropsKernel, json: "tx_drops_kernel", .frames, "Frames queued but not taken by the kernel (send error or full send buffer).",
                  metric: .portDrops, .tx, .reason("kernel")),
            .init(\.transmitSendErrors, json: "tx_send_errors", .events, "Failed sendto calls (one per burst at most), e.g. ENETDOWN, ENXIO, ENOBUFS.",
                  metric: .kernelSendErrors, .tx),
            .init(\.receiveBusyCycles, json: nil, .cycles,
                  "TSC cycles its poll thread spent on this socket's receive bursts (taking, switching and handing them on): its share of the thread, the load rx-queue balancing weighs.",
                  metric: .ringBusyCycles, .rx),
        ]

        public var receiveDrops: UInt64 { total(of: .portDrops, with: .rx) }

        public var transmitDrops: UInt64 { total(of: .portDrops, with: .tx) }
    }

    /// The counters now, row by row of the table. Management side (any thread).
    public func snapshot() -> Snapshot { cells.snapshot() }

    // Written out field by field: the hot path takes no key path.
    // Unsafe (the three below): each address is a stored UInt64 field of the block (the `&`
    // of a stored property through `pointee` is its own address).

    /// Adds one receive burst's sums, its `received*` and `receiveDrops*` fields (nothing for
    /// a burst that saw no frame). The poll thread serving the port only. Inlined and
    /// borrowed, as `VirtqueueStatistics.record`: no copy of the sums.
    @inline(__always)
    func recordReceived(_ burst: borrowing KernelPortBurstCounters) {
        let packets = burst.receivedPackets, tooLarge = burst.receiveDropsTooLarge
        let truncated = burst.receiveDropsTruncated, malformed = burst.receiveDropsMalformed
        // receivedChecksumPending only counts frames also in receivedPackets.
        guard packets != 0 || tooLarge != 0 || truncated != 0 || malformed != 0 else { return }
        let block = cells.block
        cells.add(&block.pointee.receivedPackets, packets)
        cells.add(&block.pointee.receivedBytes, burst.receivedBytes)
        cells.add(&block.pointee.receiveDropsTooLarge, tooLarge)
        cells.add(&block.pointee.receiveDropsTruncated, truncated)
        cells.add(&block.pointee.receiveDropsMalformed, malformed)
        cells.add(&block.pointee.receivedChecksumPending, burst.receivedChecksumPending)
    }

    /// Adds one transmit burst's sums, its `transmit*` fields. The thread holding the port's
    /// transmit side only.
    @inline(__always)
    func recordTransmitted(_ burst: borrowing KernelPortBurstCounters) {
        let block = cells.block
        cells.add(&block.pointee.transmittedPackets, burst.transmittedPackets)
        cells.add(&block.pointee.transmittedBytes, burst.transmittedBytes)
        cells.add(&block.pointee.transmitDropsTooLarge, burst.transmitDropsTooLarge)
        cells.add(&block.pointee.transmitDropsTooShort, burst.transmitDropsTooShort)
        cells.add(&block.pointee.transmitDropsUnsupportedOffload, burst.transmitDropsUnsupportedOffload)
        cells.add(&block.pointee.transmitDropsRingFull, burst.transmitDropsRingFull)
        cells.add(&block.pointee.transmitDropsKernel, burst.transmitDropsKernel)
        cells.add(&block.pointee.transmitSendErrors, burst.transmitSendErrors)
    }

    /// Counts one receive burst's cycles (rx-queue usage). The poll thread serving the port only.
    @inline(__always)
    func recordBusyCycles(_ cycles: UInt64) {
        cells.add(&cells.block.pointee.receiveBusyCycles, cycles)
    }

    /// Adds the kernel's counters since the last read. Control side only.
    func record(_ kernel: PacketSocket.KernelStatistics) {
        recordKernel(drops: kernel.drops, freezes: kernel.freezes)
    }

    /// Adds receive-ring drops and freezes the kernel counted (af-packet's PACKET_STATISTICS,
    /// af-xdp's XDP_STATISTICS). Control side only.
    func recordKernel(drops: UInt64, freezes: UInt64) {
        let block = cells.block
        cells.add(&block.pointee.receiveRingDrops, drops)
        cells.add(&block.pointee.receiveRingFreezes, freezes)
    }
}

/// One kernel port burst's counts, summed in locals by the port (af-packet or af-xdp) and
/// recorded once (`recordReceived`, `recordTransmitted`): the snapshot's fields, of which a
/// burst fills one direction's.
typealias KernelPortBurstCounters = PacketSocketPortStatistics.Snapshot

extension CounterMetricFamily {
    public static let kernelSendErrors = port("send_errors", help: "af-packet ports: failed sendto calls (one per burst at most).")
    public static let kernelRingFreezes = port("ring_freezes", help: "af-packet ports: times the kernel froze the full receive ring.")
    public static let kernelChecksumPending = port("checksum_pending", help: "af-packet ports: received frames whose L4 checksum a local sender left to offload, forwarded as they are.")
}
