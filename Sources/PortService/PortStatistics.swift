import Dataplane
import VhostUser
import Virtio

/// A port's counters (GET /v1/ports/{name}/stats, /v1/stats, /metrics).
public struct PortStatistics: Sendable {
    public struct VringCounters: Sendable {
        public var index: Int
        public var counters: VirtqueueStatisticsSnapshot
    }

    public var name: String
    /// Sums of the ring counters from the switch's side: rx = taken from the guest's
    /// transmit rings, tx = delivered to its receive rings (zero for kernel ports).
    public var rx = VirtqueueStatisticsSnapshot()
    public var tx = VirtqueueStatisticsSnapshot()
    /// What the switch itself counted for this port, summed over poll threads.
    public var switchCounters: PortSwitchStatistics
    /// vhost-user ports: the device as it is now, and each vring's counters.
    public var device: VhostUserDeviceInfo?
    public var vrings: [VringCounters] = []
    /// Kernel ports: the sockets' counters summed, each socket's (one per poll thread, in a
    /// fanout group), and the interface's link.
    public var kernel: PacketSocketPortStatistics.Snapshot?
    public var kernelSockets: [PacketSocketPortStatistics.Snapshot] = []
    public var linkUp: Bool?
}

/// A poll thread's counters and the queues it serves.
public struct PollThreadView: Sendable {
    public var index: Int
    public var statistics: PollThreadStatistics.Snapshot
    public var queues: [Switch.QueueAssignment]
}

/// The switch as a whole (GET /v1/stats).
public struct SwitchStatistics: Sendable {
    public var ports: [PortStatistics]
    public var pollThreads: [PollThreadView]
    public var fdbEntries: Int
    public var fdbCapacity: Int
    /// Drops per segment (VLAN; 0 the default segment), for the segments with any.
    public var segments: [SegmentStatistics] = []
}
