import Dataplane
import VhostSystem
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
    /// af-xdp ports: how the XDP program is attached now (nil while the interface is missing).
    public var xdp: XdpAttachment? = nil

    public struct XdpAttachment: Sendable {
        /// native or generic (what `auto` became).
        public var mode: XDPSocket.AttachMode
        public var zeroCopy: Bool
    }

    public struct Device: Sendable {
        public var state: VhostUserDeviceInfo.ConnectionState
        public var offeredFeatures: UInt64
    }
}
