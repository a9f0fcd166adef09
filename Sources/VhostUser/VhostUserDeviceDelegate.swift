import Virtio

/// A ring the dataplane may poll: started (memory, addresses and kick known), enabled,
/// and configured for the current memory table. Valid until the next
/// `deviceQueuesChanged` call for its device.
public struct ActiveQueue: @unchecked Sendable {
    /// The vring index: 2q is guest receive queue q, 2q+1 guest transmit queue q.
    public let vringIndex: Int
    public let queue: Virtqueue
    /// The kick eventfd (-1 when the front-end polls), for adaptive polling's sleep.
    public let kickDescriptor: Int32

    public var queuePair: Int { vringIndex / 2 }
    /// Guest transmit rings are the switch's receive side (it dequeues from them).
    public var isGuestTransmit: Bool { vringIndex % 2 == 1 }

    public init(vringIndex: Int, queue: Virtqueue, kickDescriptor: Int32) {
        self.vringIndex = vringIndex
        self.queue = queue
        self.kickDescriptor = kickDescriptor
    }
}

/// Why rings stopped or logging changed, reported upward as events.
public enum VhostUserMigrationEvent: Sendable, Equatable {
    case loggingStarted
    case loggingStopped
    case ringsStopped
}

/// What the protocol layer tells the layers above. Every method is called on the control
/// thread, in order. Implementations must not call back into the control loop synchronously.
public protocol VhostUserDeviceDelegate: AnyObject, Sendable {
    /// A front-end connected (server: accepted; client: connected).
    func deviceConnected(_ device: VhostUserDevice)

    /// The set of rings the dataplane may use changed. Called with `[]` BEFORE any change
    /// that would invalidate a ring (memory table replaced, ring address or base changed,
    /// GET_VRING_BASE, reset, disconnect) and with the new set after. When this returns,
    /// the dataplane must no longer touch any queue that is not in `queues` (it waits for
    /// its poll threads to pass a quiescent point before returning).
    func deviceQueuesChanged(_ device: VhostUserDevice, queues: [ActiveQueue])

    /// Every enabled ring has memory, addresses and a kick: the device forwards.
    func deviceReady(_ device: VhostUserDevice)

    /// The session ended (disconnect, reset, port removed). Queues were already withdrawn.
    func deviceDestroyed(_ device: VhostUserDevice)

    func vringStateChanged(_ device: VhostUserDevice, vringIndex: Int, enabled: Bool)

    func featuresChanged(_ device: VhostUserDevice, features: UInt64)

    func migrationStateChanged(_ device: VhostUserDevice, event: VhostUserMigrationEvent)

    /// SEND_RARP: announce `mac` (6 bytes) from this port after a migration.
    func deviceRequestsAnnounce(_ device: VhostUserDevice, mac: [UInt8])

    /// Something an operator should see (a refused message, a broken ring), rate-limited.
    func deviceReportedError(_ device: VhostUserDevice, message: String)

    /// NET_SET_MTU was accepted (the front-end's MTU for this port).
    func deviceMTUChanged(_ device: VhostUserDevice, mtu: Int)
}

extension VhostUserDeviceDelegate {
    /// Default: nothing; the MTU is also in `VhostUserDeviceInfo`.
    public func deviceMTUChanged(_ device: VhostUserDevice, mtu: Int) {}
}
