import Dataplane
import Logging
import Synchronization
import VhostSystem
import VhostUser
import Virtio

/// The one thread-safe facade over ports: creates and deletes them (vhost-user devices
/// on the control loop plus their switch port), changes their offered features
/// (`+Features`) and their policy (`+Policy`), tells observers after each change (`PortChangeObserver`: persistence),
/// and answers what exists as plain values (`+ReadModels`). The config file, the REST API
/// and state restore all go through it; nothing above it reaches the control loop, the
/// switch or a device.
public final class PortService: @unchecked Sendable {
    public struct PortError: Error, Equatable, CustomStringConvertible {
        public enum Code: String, Sendable { case invalid, conflict, notFound, unsupported, failed }
        public var code: Code
        public var message: String
        public var description: String { message }
        public init(_ code: Code, _ message: String) { self.code = code; self.message = message }
    }

    /// A port as it exists now (internal: the API sees the read models).
    struct Port: Sendable {
        /// What the port was created with, its offered feature mask resolved
        /// (`featureMask` set, enable/disable lists empty) and kept current by feature
        /// changes: with the device's offer, the one source of truth.
        var spec: PortSpec
        var id: Int
        /// The absolute socket path (vhost-user).
        var socketPath: String?
        var device: VhostUserDevice?
        /// Kernel ports: what the switch holds too (af-packet: one socket per poll thread;
        /// af-xdp: the XDP socket); nil while the interface is missing.
        var kernel: KernelPort?
        /// Kernel ports' counters, a socket's each (af-packet and af-xdp share the family),
        /// kept across reopens.
        var packetStatistics: [PacketSocketPortStatistics] = []
        var linkUp: Bool?
    }

    let fabric: Switch
    let controlLoop: VhostUserControlLoop
    public let socketDirectory: SocketDirectory
    let logger: Logger
    let emit: SwitchEventHandler
    let ports = Mutex<[String: Port]>([:])
    /// The vhost-user ports' absolute socket paths (changed with `ports`, under `changes`), so
    /// the uniqueness check on create does not compare every port's path.
    private let socketPaths = Mutex<Set<String>>([])
    /// Serializes create/delete/feature and policy changes so checks and effects cannot interleave,
    /// and observers see the changes in the order they happened.
    let changes = Mutex<Void>(())
    let observers = Mutex<[any PortChangeObserver]>([])
    /// Saved ports that could not be re-created yet (`+PendingRestores`), in save order.
    let pendingRestores = Mutex<[PendingRestore]>([])

    public init(fabric: Switch, controlLoop: VhostUserControlLoop, socketDirectory: SocketDirectory,
                logger: Logger, emit: @escaping SwitchEventHandler = { _ in }) {
        self.fabric = fabric
        self.controlLoop = controlLoop
        self.socketDirectory = socketDirectory
        self.logger = logger
        self.emit = emit
        fabric.addHousekeepingTask { [weak self] in self?.superviseKernelPorts() }
        fabric.addHousekeepingTask { [weak self] in self?.retryPendingRestores() }
    }

    var allPorts: [Port] { ports.withLock { Array($0.values) }.sorted { $0.id < $1.id } }

    /// What persistence saves: every port's spec, in creation order, then the pending ones.
    public var specs: [PortSpec] { allPorts.map(\.spec) + pendingRestores.withLock { $0.map(\.spec) } }

    public var portCount: Int { ports.withLock { $0.count } }

    /// Subscribes `observer` to every later change (create, delete, a new offered mask, a new policy).
    public func addObserver(_ observer: any PortChangeObserver) {
        observers.withLock { $0.append(observer) }
    }

    /// Called with `changes` held, so observers see changes one at a time and in order.
    func changed(_ change: PortChange) {
        for observer in observers.withLock({ $0 }) { observer.portChanged(change) }
    }

    /// Creates a port. A failure undoes whatever was done, so nothing half-made remains.
    @discardableResult
    public func create(_ spec: PortSpec) throws(PortError) -> PortView {
        let port = try createPort(spec)
        return view(of: port)
    }

    private func createPort(_ spec: PortSpec) throws(PortError) -> Port {
        try changes.withLock { _ throws(PortError) -> Port in
            if isPendingRestore(spec.name) { throw PortError(.conflict, "a saved port named \"\(spec.name)\" waits to be restored") }
            let port = try makePort(spec)
            changed(.saved(port.spec))
            return port
        }
    }

    /// Creates the port; `changes` held. `adopting`: a vhost-user device handed over by the
    /// previous process (`+Handover`), taken as it is instead of a new socket.
    func makePort(_ spec: PortSpec, adopting: HandedOverDevice? = nil) throws(PortError) -> Port {
        if let problem = PortSpec.validateName(spec.name) { throw PortError(.invalid, problem) }
        if let problem = spec.policyProblem(pollThreads: fabric.pollThreadCount) { throw PortError(.invalid, problem) }
        if ports.withLock({ $0[spec.name] }) != nil { throw PortError(.conflict, "a port named \"\(spec.name)\" exists") }
        switch spec.kind {
        case .vhostUser(let vhost):
            return try createVhostUser(spec, vhost, adopting: adopting)
        case .afPacket(let interface):
            return try createPacketPort(spec, interface: interface)
        case .afXdp(let xdp):
            return try createXdpPort(spec, xdp)
        }
    }

    private func createVhostUser(_ spec: PortSpec, _ vhost: PortSpec.VhostUser, adopting: HandedOverDevice?) throws(PortError) -> Port {
        let path: String
        do { path = try socketDirectory.resolve(vhost.socketPath) } catch { throw PortError(.invalid, error.message) }
        if socketPaths.withLock({ $0.contains(path) }) {
            throw PortError(.conflict, "socket \(path) is used by another port")
        }
        let features: UInt64
        do throws(FeatureOffer.Problem) { features = try FeatureOffer.mask(for: vhost) } catch { throw PortError(.invalid, error.description) }
        do { try socketDirectory.prepareParent(of: path) } catch { throw PortError(.invalid, error.message) }

        let id = try addSwitchPort(spec, mtu: vhost.mtu)
        let bridge = VhostUserPortBridge(portID: id, name: spec.name, fabric: fabric, logger: logger, emit: emit, adopting: adopting != nil)
        let configuration = VhostUserDeviceConfiguration(
            name: spec.name, socketPath: path, mode: vhost.mode == .server ? .server : .client,
            maxQueuePairs: vhost.queuePairs, offeredFeatures: features, socketPermissions: vhost.permissions)
        let device: VhostUserDevice
        do {
            if let adopting {
                device = try controlLoop.adoptDevice(configuration, delegate: bridge, export: adopting.export, descriptors: adopting.descriptors)
            } else {
                device = try controlLoop.addDevice(configuration, delegate: bridge)
            }
        } catch {
            fabric.removePort(id: id)
            throw PortError(.failed, "cannot \(adopting == nil ? "create" : "adopt") vhost-user socket \(path): \(error)")
        }
        if adopting == nil && vhost.mode == .server && (vhost.owner != nil || vhost.group != nil) {
            do {
                try FileSystem.changeOwner(path, user: vhost.owner, group: vhost.group)
            } catch {
                controlLoop.removeDevice(device)
                fabric.removePort(id: id)
                throw PortError(.invalid, "cannot set the socket's owner: \(error)")
            }
        }
        var resolved = vhost
        resolved.featureMask = features
        resolved.enableFeatures = []
        resolved.disableFeatures = []
        var resolvedSpec = spec
        resolvedSpec.kind = .vhostUser(resolved)
        let port = Port(spec: resolvedSpec, id: id, socketPath: path, device: device)
        ports.withLock { $0[spec.name] = port }
        socketPaths.withLock { _ = $0.insert(path) }
        logger.info(adopting == nil ? "port created" : "port taken over", metadata: ["port": "\(spec.name)", "socket": "\(path)", "mode": "\(vhost.mode.rawValue)"])
        if adopting == nil { emit(SwitchEvent(.portCreated, port: spec.name)) }
        return port
    }

    private func createPacketPort(_ spec: PortSpec, interface: String) throws(PortError) -> Port {
        try requireFreeInterface(interface)
        let sockets: PacketSocketGroup
        do {
            sockets = try PacketSocketGroup.open(interface: interface, count: fabric.pollThreadCount)
        } catch {
            if error.noSuchDevice { throw PortError(.invalid, "no interface named \(interface)") }
            if error.permissionDenied { throw PortError(.failed, "opening a packet socket on \(interface) needs CAP_NET_RAW") }
            throw PortError(.failed, "cannot open a packet socket on \(interface): \(error)")
        }
        let id = try addSwitchPort(spec, mtu: sockets.mtu)
        fabric.setKernelPort(portID: id, port: .packetSockets(sockets))
        let linkUp = sockets.linkIsUp()
        let port = Port(spec: spec, id: id, kernel: .packetSockets(sockets), packetStatistics: sockets.statistics, linkUp: linkUp)
        ports.withLock { $0[spec.name] = port }
        logger.info("port created", metadata: ["port": "\(spec.name)", "interface": "\(interface)", "link": "\(linkUp ? "up" : "down")"])
        emit(SwitchEvent(.portCreated, port: spec.name))
        return port
    }

    /// One kernel port per interface: a second af-packet socket would see every frame twice,
    /// and an af-xdp port's program takes the frames an af-packet socket would see.
    func requireFreeInterface(_ interface: String) throws(PortError) {
        if ports.withLock({ $0.values.contains { $0.spec.kind.kernelInterface == interface } }) {
            throw PortError(.conflict, "interface \(interface) already has a port")
        }
    }

    /// The port's place in the switch, its policy set before any frame can reach it.
    func addSwitchPort(_ spec: PortSpec, mtu: Int?) throws(PortError) -> Int {
        guard let id = fabric.addPort(name: spec.name, mtu: mtu, policy: spec.policy) else {
            throw PortError(.conflict, "the switch has \(Switch.maxPorts) ports, the most it takes")
        }
        return id
    }

    /// Once a second: follows each kernel port's interface. Down and up need nothing (the
    /// kernel keeps the socket bound); a deleted interface takes the port's socket away
    /// until an interface of that name exists again, then a fresh socket is swapped in.
    func superviseKernelPorts() {
        changes.withLock { _ in
            for port in ports.withLock({ Array($0.values) }) {
                if case .afXdp(let xdp) = port.spec.kind { superviseXdpPort(port, xdp); continue }
                guard case .afPacket(let interface) = port.spec.kind else { continue }
                var updated = port
                if let current = port.kernel?.packetSocketGroup {
                    current.collectKernelStatistics()
                    switch current.linkState() {
                    case .up, .down:
                        let up = current.linkIsUp()
                        if up != port.linkUp {
                            for socket in current.sockets { socket.socket.takePendingError() }
                            updated.linkUp = up
                            logger.notice("link \(up ? "up" : "down")", metadata: ["port": "\(port.spec.name)", "interface": "\(interface)"])
                            emit(SwitchEvent(.linkChanged, port: port.spec.name, data: ["up": .bool(up)]))
                        }
                    case .missing:
                        fabric.setKernelPort(portID: port.id, port: nil)
                        fabric.fdb.flush(port: port.id)
                        updated.kernel = nil
                        updated.linkUp = false
                        logger.warning("interface deleted; waiting for it to come back", metadata: ["port": "\(port.spec.name)", "interface": "\(interface)"])
                        emit(SwitchEvent(.linkChanged, port: port.spec.name, data: ["up": .bool(false), "interface": .string("missing")]))
                    case .replaced:
                        if let fresh = try? current.reopened() {
                            fabric.setKernelPort(portID: port.id, port: .packetSockets(fresh))
                            fabric.fdb.flush(port: port.id)
                            updated.kernel = .packetSockets(fresh)
                            updated.linkUp = fresh.linkIsUp()
                            logger.notice("interface re-created; socket reopened", metadata: ["port": "\(port.spec.name)", "interface": "\(interface)"])
                            emit(SwitchEvent(.linkChanged, port: port.spec.name, data: ["up": .bool(updated.linkUp ?? false)]))
                        }
                    }
                } else if NetworkInterface.index(named: interface) != nil,
                          let fresh = try? PacketSocketGroup.open(interface: interface, count: fabric.pollThreadCount,
                                                                  statistics: port.packetStatistics) {
                    fabric.setKernelPort(portID: port.id, port: .packetSockets(fresh))
                    updated.kernel = .packetSockets(fresh)
                    updated.linkUp = fresh.linkIsUp()
                    logger.notice("interface is back; socket reopened", metadata: ["port": "\(port.spec.name)", "interface": "\(interface)"])
                    emit(SwitchEvent(.linkChanged, port: port.spec.name, data: ["up": .bool(updated.linkUp ?? false)]))
                }
                ports.withLock { if $0[port.spec.name] != nil { $0[port.spec.name] = updated } }
            }
        }
    }

    /// Deletes a port: the front-end is disconnected, the server socket file removed.
    public func delete(name: String) throws(PortError) {
        try remove(name: name, notify: true)
    }

    /// Deletes every port, for shutdown. Observers are not told: the saved state keeps the
    /// ports for the next start.
    public func deleteAll() {
        for port in allPorts { try? remove(name: port.spec.name, notify: false) }
    }

    private func remove(name: String, notify: Bool) throws(PortError) {
        try changes.withLock { _ throws(PortError) in
            guard let port = ports.withLock({ $0.removeValue(forKey: name) }) else {
                guard notify, forgetPendingRestore(name) else { throw PortError(.notFound, "no port named \"\(name)\"") }
                changed(.removed(name: name))
                return
            }
            if let path = port.socketPath { socketPaths.withLock { _ = $0.remove(path) } }
            if let device = port.device { controlLoop.removeDevice(device) }
            fabric.removePort(id: port.id)
            logger.info("port deleted", metadata: ["port": "\(name)"])
            emit(SwitchEvent(.portDeleted, port: name))
            if notify { changed(.removed(name: name)) }
        }
    }
}
