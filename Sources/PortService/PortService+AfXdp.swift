import Dataplane
import Logging
import VhostSystem

/// af-xdp ports: creation (the XDP program attached, the queue bound) and supervision of
/// their interface, as for af-packet ports.
extension PortService {
    func createXdpPort(_ spec: PortSpec, _ xdp: PortSpec.AfXdp) throws(PortError) -> Port {
        try requireFreeInterface(xdp.interface)
        let xdpPort = try Self.openXdpPort(xdp, statistics: PacketSocketPortStatistics())
        let id = try addSwitchPort(spec, mtu: xdpPort.socket.mtu)
        fabric.setKernelPort(portID: id, port: .afXdp(xdpPort))
        let linkUp = xdpPort.linkIsUp()
        let port = Port(spec: spec, id: id, kernel: .afXdp(xdpPort), packetStatistics: [xdpPort.statistics], linkUp: linkUp)
        ports.withLock { $0[spec.name] = port }
        logger.info("port created", metadata: [
            "port": "\(spec.name)", "interface": "\(xdp.interface)", "queue": "\(xdp.queue)", "queues": "\(xdp.queues)",
            "xdp_mode": "\(xdpPort.socket.attachedMode.rawValue)", "zero_copy": "\(xdpPort.socket.zeroCopy)",
            "link": "\(linkUp ? "up" : "down")",
        ])
        emit(SwitchEvent(.portCreated, port: spec.name))
        return port
    }

    /// Opens the socket, with the API's answer when XDP cannot attach: a 400 for what the
    /// request got wrong (no such interface or queue, a mode the driver lacks, an MTU too
    /// large), a 409 when another XDP program holds the interface, a 500 otherwise.
    static func openXdpPort(_ xdp: PortSpec.AfXdp, statistics: PacketSocketPortStatistics) throws(PortError) -> AfXdpPort {
        let configuration = XDPSocket.Configuration(queue: UInt32(xdp.queue), queueCount: xdp.queues, mode: xdp.mode)
        do {
            return try AfXdpPort.open(interface: xdp.interface, configuration: configuration, statistics: statistics)
        } catch {
            let interface = xdp.interface
            switch error.kind {
            case .noSuchInterface: throw PortError(.invalid, "no interface named \(interface)")
            case .noSuchQueue:
                let queues = xdp.queues == 1 ? "queue \(xdp.queue)" : "queues \(xdp.queue)-\(xdp.queue + xdp.queues - 1)"
                throw PortError(.invalid, "interface \(interface) has no \(queues) for AF_XDP: \(error)")
            case .mtuTooLarge: throw PortError(.invalid, "cannot use AF_XDP on \(interface): \(error)")
            case .modeUnsupported:
                throw PortError(.unsupported, "cannot attach XDP in \(xdp.mode.rawValue) mode to \(interface): \(error)")
            case .busy: throw PortError(.conflict, "another XDP program is attached to \(interface): \(error)")
            case .permissionDenied:
                throw PortError(.failed, "AF_XDP on \(interface) needs CAP_NET_ADMIN, CAP_NET_RAW and CAP_BPF (or CAP_SYS_ADMIN): \(error)")
            case .unsupported: throw PortError(.failed, "this kernel has no AF_XDP: \(error)")
            case .invalidConfiguration, .failed: throw PortError(.failed, "cannot open an AF_XDP socket on \(interface): \(error)")
            }
        }
    }

    /// Once a second (`changes` held): the kernel's drop counters, link changes, and a new
    /// socket when the interface was re-created (deleting it detached the program).
    func superviseXdpPort(_ port: Port, _ xdp: PortSpec.AfXdp) {
        var updated = port
        let metadata: Logger.Metadata = ["port": "\(port.spec.name)", "interface": "\(xdp.interface)"]
        var state = PacketSocket.LinkState.missing
        if let current = port.kernel?.afXdpPort {
            current.collectKernelStatistics()
            state = current.linkState()
        }
        switch state {
        case .up, .down:
            let up = state == .up
            if up != port.linkUp {
                updated.linkUp = up
                logger.notice("link \(up ? "up" : "down")", metadata: metadata)
                emit(SwitchEvent(.linkChanged, port: port.spec.name, data: ["up": .bool(up)]))
            }
        case .missing, .replaced:
            if port.kernel != nil {
                fabric.setKernelPort(portID: port.id, port: nil)
                fabric.fdb.flush(port: port.id)
                updated.kernel = nil
                updated.linkUp = false
                logger.warning("interface deleted; waiting for it to come back", metadata: metadata)
                emit(SwitchEvent(.linkChanged, port: port.spec.name, data: ["up": .bool(false), "interface": .string("missing")]))
            }
            if NetworkInterface.index(named: xdp.interface) != nil,
               let fresh = try? Self.openXdpPort(xdp, statistics: port.packetStatistics.first ?? PacketSocketPortStatistics()) {
                fabric.setKernelPort(portID: port.id, port: .afXdp(fresh))
                updated.kernel = .afXdp(fresh)
                updated.linkUp = fresh.linkIsUp()
                logger.notice("interface is back; AF_XDP socket reopened", metadata: metadata)
                emit(SwitchEvent(.linkChanged, port: port.spec.name, data: ["up": .bool(updated.linkUp ?? false)]))
            }
        }
        ports.withLock { if $0[port.spec.name] != nil { $0[port.spec.name] = updated } }
    }

    /// For a hand-over (`changes` held, polling paused): closes every af-xdp port's socket, so
    /// its XDP program is detached and the new process can attach its own. Returns the ports
    /// closed.
    func closeXdpSockets() -> [String] {
        var closed: [String] = []
        for port in allPorts where port.kernel?.afXdpPort != nil {
            fabric.setKernelPort(portID: port.id, port: nil)
            ports.withLock { $0[port.spec.name]?.kernel = nil }
            closed.append(port.spec.name)
        }
        return closed
    }

    /// After a failed hand-over: opens the sockets `closeXdpSockets` closed (one that cannot
    /// be opened now is retried by supervision, as after an interface came back).
    func reopenXdpSockets(_ names: [String]) {
        for name in names {
            guard let port = ports.withLock({ $0[name] }), case .afXdp(let xdp) = port.spec.kind,
                  let fresh = try? Self.retryingWhileReleased({ () throws(PortError) in
                      try Self.openXdpPort(xdp, statistics: port.packetStatistics.first ?? PacketSocketPortStatistics())
                  })
            else { continue }
            fabric.setKernelPort(portID: port.id, port: .afXdp(fresh))
            ports.withLock { $0[name]?.kernel = .afXdp(fresh) }
        }
    }

    /// `open` again for up to two seconds while it fails: the other process's AF_XDP socket on
    /// the same queue is closed, but the kernel releases its queue binding (the buffer pool) in
    /// deferred work, so for a moment bind says EBUSY. Hand-overs only: a create answers at once.
    static func retryingWhileReleased<T>(_ open: () throws(PortError) -> T) throws(PortError) -> T {
        let deadline = MonotonicClock.nanoseconds() + 2_000_000_000
        while true {
            do { return try open() } catch {
                if MonotonicClock.nanoseconds() >= deadline { throw error }
                SystemThread.sleep(milliseconds: 10)
            }
        }
    }
}
