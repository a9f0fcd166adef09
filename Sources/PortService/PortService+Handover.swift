import Dataplane
import VhostSystem
import VhostUser

/// A vhost-user device handed over by the previous process, with the fds it names.
struct HandedOverDevice {
    let export: VhostUserDeviceExport
    let descriptors: VhostUserHandoverDescriptors
}

/// What the ports are, for a live hand-over: the specs, the vhost-user devices (with their fds)
/// and the learned MACs by port name.
public struct PortHandover: @unchecked Sendable {
    public var specs: [PortSpec]
    /// Saved ports not re-created yet: the new process keeps trying.
    public var pendingSpecs: [PortSpec]
    public var vhostUser: VhostUserHandover
    public var macTable: [MacEntry]

    /// A port as the new process makes it again.
    public struct Port: Equatable, Sendable {
        public var spec: PortSpec
        /// The vhost-user device (nil for a kernel port: the new process opens its own socket).
        public var device: VhostUserDeviceExport?

        public init(spec: PortSpec, device: VhostUserDeviceExport? = nil) {
            self.spec = spec
            self.device = device
        }
    }

    /// A learned MAC, by port name (port ids may differ in the new process).
    public struct MacEntry: Equatable, Sendable {
        public var mac: UInt64
        public var segment: Int
        public var port: String

        public init(mac: UInt64, segment: Int, port: String) {
            self.mac = mac
            self.segment = segment
            self.port = port
        }
    }
}

/// Live hand-over, both sides. Old process: `handOver` holds every change (create, delete,
/// features, policy), pauses the poll threads (`Switch.pausePolling`: no ring or kernel
/// socket is touched), withdraws every vhost-user queue and runs the transfer; if it fails,
/// all is put back and polling resumes, every port at once. New process: `adopt` makes each
/// port from its spec with its device as it was and refills the MAC table; after the commit
/// `startAdoptedPorts` starts every session and ring at once.
extension PortService {
    /// Returns whether the new process committed (then nothing is put back: this process exits).
    public func handOver(_ transfer: @escaping @Sendable (PortHandover) -> Bool) -> Bool {
        changes.withLock { _ in
            fabric.pausePolling()
            // An interface takes one XDP program: the new process can attach only once ours is
            // gone (before `current` is taken, which would keep the sockets open).
            let closedXdpPorts = closeXdpSockets()
            let current = allPorts
            let specs = current.map(\.spec)
            let names = Dictionary(uniqueKeysWithValues: current.map { ($0.id, $0.spec.name) })
            let committed = controlLoop.handOver { [fabric] vhostUser in
                // The queues are out of the poll threads now: the table no longer changes.
                let macTable = fabric.fdb.entries(now: Self.nowSeconds()).compactMap { entry in
                    names[entry.port].map { PortHandover.MacEntry(mac: entry.mac, segment: entry.segment, port: $0) }
                }
                let pending = self.pendingRestores.withLock { $0.map(\.spec) }
                return transfer(PortHandover(specs: specs, pendingSpecs: pending, vhostUser: vhostUser, macTable: macTable))
            }
            if !committed {
                reopenXdpSockets(closedXdpPorts)
                fabric.resumePolling()
            }
            return committed
        }
    }

    /// Makes the ports handed over by the previous process, in order: a kernel port opens its
    /// own socket (an af-xdp port attaches its XDP program: the old process detached its
    /// own); a vhost-user port takes its listener and session from `descriptors` (validated
    /// as a front-end's requests). Then the MACs are learned on their ports (by name: ids may
    /// differ here); nothing is read or polled until `startAdoptedPorts`. Observers are not
    /// told (the saved state already has these ports), and the replayed sessions emit no
    /// events (they are not new).
    public func adopt(_ handed: [PortHandover.Port], macTable: [PortHandover.MacEntry],
                      descriptors: VhostUserHandoverDescriptors) throws(PortError) {
        fabric.pausePolling()
        for port in handed {
            let spec = port.spec
            try changes.withLock { _ throws(PortError) in
                switch (spec.kind, port.device) {
                case (.vhostUser, let device?):
                    _ = try makePort(spec, adopting: HandedOverDevice(export: device, descriptors: descriptors))
                case (.afPacket, nil):
                    _ = try makePort(spec)
                case (.afXdp, nil):
                    _ = try Self.retryingWhileReleased { () throws(PortError) in try makePort(spec) }
                default:
                    throw PortError(.invalid, "port \(spec.name): a vhost-user port needs its device, a kernel port has none")
                }
            }
        }
        let ids = ports.withLock { ports in Dictionary(uniqueKeysWithValues: ports.values.map { ($0.spec.name, $0.id) }) }
        let now = Self.nowSeconds()
        for entry in macTable {
            guard let id = ids[entry.port] else { continue }
            _ = fabric.fdb.learn(entry.mac, segment: entry.segment, port: id, now: now)
        }
    }

    /// After the commit (the old daemon is gone): the adopted sessions start reading their
    /// sockets and every port's rings are polled, all at once. Before it nothing moves, so an
    /// old daemon that resumes after a failed hand-over finds every ring where it left it (a
    /// packed ring has no index in guest memory to resume from) and every message unread.
    public func startAdoptedPorts() {
        controlLoop.startAdoptedSessions()
        fabric.resumePolling()
        for port in allPorts { (port.device?.delegate as? VhostUserPortBridge)?.adoptionFinished() }
    }
}
