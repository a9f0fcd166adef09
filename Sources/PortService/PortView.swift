import Dataplane
import VhostUser

/// A port as GET /v1/ports shows it.
public struct PortView: Sendable {
    /// Its settings (the offered mask resolved, see `PortService.Port.spec`).
    public var spec: PortSpec
    public var id: Int
    /// The absolute socket path (vhost-user).
    public var socketPath: String?
    /// vhost-user ports: the device's connection state and offered features.
    public var device: Device?

    public struct Device: Sendable {
        public var state: VhostUserDeviceInfo.ConnectionState
        public var offeredFeatures: UInt64
    }
}
