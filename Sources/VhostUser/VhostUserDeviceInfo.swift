import Virtio

/// A port's state as the management plane shows it: a copy, taken on the control thread.
public struct VhostUserDeviceInfo: Sendable {
    public enum ConnectionState: String, Sendable, CaseIterable {
        /// Server mode, no front-end connected.
        case listening
        /// Client mode, trying to connect (with backoff).
        case connecting
        /// A session exists but not every enabled ring is ready.
        case connected
        /// Queues are published to the dataplane.
        case ready
        /// Removed or the loop stopped.
        case stopped
    }

    public var name: String
    public var socketPath: String
    public var mode: VhostUserDeviceConfiguration.Mode
    public var state: ConnectionState
    public var offeredFeatures: UInt64
    /// nil until SET_FEATURES.
    public var negotiatedFeatures: UInt64?
    public var offeredProtocolFeatures: UInt64
    /// nil until SET_PROTOCOL_FEATURES.
    public var negotiatedProtocolFeatures: UInt64?
    public var mtu: Int?
    public var status: UInt8
    public var maxQueuePairs: Int
    /// Queue pairs with at least one ring in use by the front-end.
    public var activeQueuePairs: Int
    public var memoryRegions: [GuestMemoryRegionDescriptor]
    public var dirtyLogging: Bool
    public var vrings: [VhostUserVringInfo]
    /// Sessions since the device was added.
    public var sessions: UInt64
    /// Requests refused since the device was added.
    public var refusedRequests: UInt64
    /// Sessions ended because of a protocol error.
    public var sessionsClosedOnError: UInt64
    /// Of those, sessions ended by containment: guest memory that faulted, a stopped ring.
    public var guestFaults: UInt64 = 0
    public var lastError: String?
}

public struct VhostUserVringInfo: Sendable {
    public var index: Int
    public var size: Int?
    public var enabled: Bool
    public var started: Bool
    public var descriptorAddress: UInt64?
    public var availAddress: UInt64?
    public var usedAddress: UInt64?
    public var logAddress: UInt64?
    public var logUsed: Bool
    /// The next avail index the switch will process: the base while the ring is not
    /// published; while it is, the used.idx the switch last released (equal between bursts,
    /// since every chain completes in the burst that takes it).
    public var lastAvailIndex: UInt16
    /// The used.idx the switch last released; nil while the ring is not published.
    public var lastUsedIndex: UInt16?
    /// Read from guest memory now.
    public var currentAvailIndex: UInt16?
    public var currentUsedIndex: UInt16?
    public var hasKick: Bool
    public var kickPolled: Bool
    public var hasCall: Bool
    /// The ring's counters (shared with the dataplane; read-only here).
    public var statistics: VirtqueueStatistics?
    /// Split (VIRTIO 1.1 2.7) or packed (2.8, RING_PACKED negotiated).
    public var ringLayout: Virtqueue.Layout = .split
    /// Packed rings: the avail wrap counter that goes with `lastAvailIndex`; nil for split rings.
    public var wrapCounter: Bool? = nil
}
