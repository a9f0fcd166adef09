import Synchronization
import VhostSystem
import Virtio

/// Counters of one AF_PACKET port. Each group has one writer, which adds a burst's local
/// sums once per burst with a relaxed load and store (no read-modify-write): receive
/// counters by the poll thread serving the port, transmit counters by whichever poll
/// thread holds the port's transmit side (alone, or under its TransmitLock), kernel
/// counters by the control side (`PacketSocketPort.collectKernelStatistics`). The
/// management plane reads them at any time with `snapshot()`. The object outlives socket
/// swaps (`reopened()`), so the counts continue across an interface being re-created.
public final class PacketSocketPortStatistics: Sendable {
    // One atomic per counter of `Snapshot.counters` (the table below says what each counts).
    public let receivedPackets = Atomic<UInt64>(0)
    public let receivedBytes = Atomic<UInt64>(0)
    public let receiveDropsTooLarge = Atomic<UInt64>(0)
    public let receiveDropsTruncated = Atomic<UInt64>(0)
    public let receiveDropsMalformed = Atomic<UInt64>(0)
    public let receivedChecksumPending = Atomic<UInt64>(0)
    public let transmittedPackets = Atomic<UInt64>(0)
    public let transmittedBytes = Atomic<UInt64>(0)
    public let transmitDropsTooLarge = Atomic<UInt64>(0)
    public let transmitDropsTooShort = Atomic<UInt64>(0)
    public let transmitDropsUnsupportedOffload = Atomic<UInt64>(0)
    public let transmitDropsRingFull = Atomic<UInt64>(0)
    public let transmitDropsKernel = Atomic<UInt64>(0)
    public let transmitSendErrors = Atomic<UInt64>(0)
    public let receiveRingDrops = Atomic<UInt64>(0)
    public let receiveRingFreezes = Atomic<UInt64>(0)

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
        ]

        public var receiveDrops: UInt64 { total(of: .portDrops, with: .rx) }

        public var transmitDrops: UInt64 { total(of: .portDrops, with: .tx) }
    }

    /// The counters now. Management side (any thread).
    public func snapshot() -> Snapshot {
        var s = Snapshot()
        s.receivedPackets = receivedPackets.load(ordering: .relaxed)
        s.receivedBytes = receivedBytes.load(ordering: .relaxed)
        s.receiveDropsTooLarge = receiveDropsTooLarge.load(ordering: .relaxed)
        s.receiveDropsTruncated = receiveDropsTruncated.load(ordering: .relaxed)
        s.receiveDropsMalformed = receiveDropsMalformed.load(ordering: .relaxed)
        s.receivedChecksumPending = receivedChecksumPending.load(ordering: .relaxed)
        s.transmittedPackets = transmittedPackets.load(ordering: .relaxed)
        s.transmittedBytes = transmittedBytes.load(ordering: .relaxed)
        s.transmitDropsTooLarge = transmitDropsTooLarge.load(ordering: .relaxed)
        s.transmitDropsTooShort = transmitDropsTooShort.load(ordering: .relaxed)
        s.transmitDropsUnsupportedOffload = transmitDropsUnsupportedOffload.load(ordering: .relaxed)
        s.transmitDropsRingFull = transmitDropsRingFull.load(ordering: .relaxed)
        s.transmitDropsKernel = transmitDropsKernel.load(ordering: .relaxed)
        s.transmitSendErrors = transmitSendErrors.load(ordering: .relaxed)
        s.receiveRingDrops = receiveRingDrops.load(ordering: .relaxed)
        s.receiveRingFreezes = receiveRingFreezes.load(ordering: .relaxed)
        return s
    }

    /// Adds the kernel's counters since the last read. Control side only.
    func record(_ kernel: PacketSocket.KernelStatistics) {
        Self.add(receiveRingDrops, kernel.drops)
        Self.add(receiveRingFreezes, kernel.freezes)
    }

    @inline(__always)
    static func add(_ counter: borrowing Atomic<UInt64>, _ amount: UInt64) {
        guard amount != 0 else { return }
        counter.store(counter.load(ordering: .relaxed) &+ amount, ordering: .relaxed)
    }
}

extension CounterMetricFamily {
    public static let kernelSendErrors = port("send_errors", help: "af-packet ports: failed sendto calls (one per burst at most).")
    public static let kernelRingFreezes = port("ring_freezes", help: "af-packet ports: times the kernel froze the full receive ring.")
    public static let kernelChecksumPending = port("checksum_pending", help: "af-packet ports: received frames whose L4 checksum a local sender left to offload, forwarded as they are.")
}
