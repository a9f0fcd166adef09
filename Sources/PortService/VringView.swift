import VhostUser
import Virtio

/// A vring of a vhost-user port (GET /vrings), with the poll thread that serves it.
public struct VringView: Sendable {
    public var info: VhostUserVringInfo
    public var pollThread: Int?
    public var counters: VirtqueueStatisticsSnapshot
}

/// Every vring of a port, and how many the device could have.
public struct VringsView: Sendable {
    public var maxQueuePairs: Int
    public var vrings: [VringView]
}
