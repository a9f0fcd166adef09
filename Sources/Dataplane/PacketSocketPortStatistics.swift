import Synchronization
import VhostSystem

/// Counters of one AF_PACKET port. Each group has one writer, which adds a burst's local
/// sums once per burst with a relaxed load and store (no read-modify-write): receive
/// counters by the poll thread serving the port, transmit counters by whichever poll
/// thread holds the port's transmit side (alone, or under its TransmitLock), kernel
/// counters by the control side (`PacketSocketPort.collectKernelStatistics`). The
/// management plane reads them at any time with `snapshot()`. The object outlives socket
/// swaps (`reopened()`), so the counts continue across an interface being re-created.
public final class PacketSocketPortStatistics: Sendable {
    public let receivedPackets = Atomic<UInt64>(0)
    public let receivedBytes = Atomic<UInt64>(0)
    /// Received frames longer than the dataplane buffer.
    public let receiveDropsTooLarge = Atomic<UInt64>(0)
    /// Received frames the ring cut short (longer than a receive block).
    public let receiveDropsTruncated = Atomic<UInt64>(0)
    /// Runts and ring entries with offsets outside their block.
    public let receiveDropsMalformed = Atomic<UInt64>(0)
    /// Received frames whose L4 checksum was left to offload by a local sender
    /// (TP_STATUS_CSUMNOTREADY); forwarded as they are.
    public let receivedChecksumPending = Atomic<UInt64>(0)

    public let transmittedPackets = Atomic<UInt64>(0)
    public let transmittedBytes = Atomic<UInt64>(0)
    /// Frames longer than the interface takes (MTU + 18) or than their buffer.
    public let transmitDropsTooLarge = Atomic<UInt64>(0)
    /// Frames shorter than an Ethernet header.
    public let transmitDropsTooShort = Atomic<UInt64>(0)
    /// Frames whose virtio-net header asks for checksum or segmentation offload.
    public let transmitDropsUnsupportedOffload = Atomic<UInt64>(0)
    /// Frames dropped because every transmit ring slot was still in flight.
    public let transmitDropsRingFull = Atomic<UInt64>(0)
    /// Frames queued but not taken by the kernel (send error or full send buffer).
    public let transmitDropsKernel = Atomic<UInt64>(0)
    /// Failed sendto calls (one per burst at most), e.g. ENETDOWN, ENXIO, ENOBUFS.
    public let transmitSendErrors = Atomic<UInt64>(0)

    /// Frames the kernel dropped because the receive ring was full (tp_drops).
    public let receiveRingDrops = Atomic<UInt64>(0)
    /// Times the receive ring froze for that reason (tp_freeze_q_cnt).
    public let receiveRingFreezes = Atomic<UInt64>(0)

    public init() {}

    public struct Snapshot: Sendable, Equatable {
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

        public var receiveDrops: UInt64 {
            receiveDropsTooLarge &+ receiveDropsTruncated &+ receiveDropsMalformed &+ receiveRingDrops
        }

        public var transmitDrops: UInt64 {
            transmitDropsTooLarge &+ transmitDropsTooShort &+ transmitDropsUnsupportedOffload &+ transmitDropsRingFull &+ transmitDropsKernel
        }
    }

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
