import Virtio

/// How a port's vhost-user socket is set up.
public struct VhostUserDeviceConfiguration: Sendable, Equatable {
    public enum Mode: String, Sendable, Equatable {
        /// The switch owns the socket file and listens; the front-end connects.
        case server
        /// The front-end listens; the switch connects and reconnects with backoff.
        case client
    }

    public var name: String
    public var socketPath: String
    public var mode: Mode
    /// Rings are 0 ..< 2 * maxQueuePairs; GET_QUEUE_NUM reports this.
    public var maxQueuePairs: Int
    /// Virtio feature bits offered in GET_FEATURES (within `VhostUserDevice.supportedFeatures`).
    public var offeredFeatures: UInt64
    /// Server mode: chmod of the socket file, when given.
    public var socketPermissions: UInt32?

    public init(name: String, socketPath: String, mode: Mode = .server, maxQueuePairs: Int = 8,
                offeredFeatures: UInt64 = VhostUserDevice.defaultOfferedFeatures, socketPermissions: UInt32? = nil) {
        self.name = name
        self.socketPath = socketPath
        self.mode = mode
        self.maxQueuePairs = maxQueuePairs
        self.offeredFeatures = offeredFeatures
        self.socketPermissions = socketPermissions
    }
}

public enum VhostUserConfigurationError: Error, Equatable, Sendable, CustomStringConvertible {
    case invalidQueuePairs(Int)
    case unsupportedFeatures(UInt64)
    case invalidName(String)
    case duplicateName(String)
    case socket(String)
    case notRunning
    /// A handed-over device or session was refused (live hand-over).
    case handover(String)

    public var description: String {
        switch self {
        case .invalidQueuePairs(let n): "max queue pairs \(n) outside 1...\(VhostUserDevice.maxQueuePairsLimit)"
        case .unsupportedFeatures(let mask): "features 0x\(String(mask, radix: 16)) are not supported"
        case .invalidName(let name): "invalid port name \(name)"
        case .duplicateName(let name): "a device named \(name) exists"
        case .socket(let text): text
        case .notRunning: "the control loop is not running"
        case .handover(let text): "hand-over: \(text)"
        }
    }
}
