import Dataplane
import VhostSystem
import VhostUser
import Virtio

/// The read models: what the API shows, as plain values. Each asks the control loop and the
/// switch once, so a reply is one consistent look.
extension PortService {
    func vhostUserPort(_ name: String) throws(PortLookupError) -> (Port, VhostUserDevice) {
        guard let port = ports.withLock({ $0[name] }) else { throw .noPort(name) }
        guard let device = port.device else { throw .notVhostUser(port: name, type: port.spec.kind.typeName) }
        return (port, device)
    }

    /// Throws unless `name` is a vhost-user port.
    public func requireVhostUser(port name: String) throws(PortLookupError) {
        _ = try vhostUserPort(name)
    }

    func view(of port: Port, info: VhostUserDeviceInfo?) -> PortView {
        var device: PortView.Device?
        if let vhostUser = port.device, let info {
            device = PortView.Device(state: info.state, offeredFeatures: vhostUser.offeredFeatures)
        }
        let xdp = port.kernel?.afXdpPort.map { PortView.XdpAttachment(mode: $0.socket.attachedMode, zeroCopy: $0.socket.zeroCopy) }
        return PortView(spec: port.spec, id: port.id, socketPath: port.socketPath, device: device, xdp: xdp)
    }

    public var portViews: [PortView] { withDeviceInfos(allPorts, view(of:info:)) }

    public func port(named name: String) -> PortView? { ports.withLock { $0[name] }.map(view(of:)) }

    func view(of port: Port) -> PortView { withDeviceInfos([port], view(of:info:))[0] }

    /// `body` for each port with its device's info, all of them fetched in one trip through
    /// the control loop.
    func withDeviceInfos<T>(_ ports: [Port], _ body: (Port, VhostUserDeviceInfo?) -> T) -> [T] {
        var infos = controlLoop.infos(of: ports.compactMap(\.device)).makeIterator()
        return ports.map { port in body(port, port.device == nil ? nil : infos.next()) }
    }

    public func features(port name: String) throws(PortLookupError) -> FeaturesView {
        let (_, device) = try vhostUserPort(name)
        return Self.features(device, controlLoop.info(of: device))
    }

    public func device(port name: String) throws(PortLookupError) -> VhostUserDeviceInfo {
        let (_, device) = try vhostUserPort(name)
        return controlLoop.info(of: device)
    }

    public func vrings(port name: String) throws(PortLookupError) -> VringsView {
        let (_, device) = try vhostUserPort(name)
        let info = controlLoop.info(of: device)
        let assignments = fabric.queueAssignments
        return VringsView(maxQueuePairs: info.maxQueuePairs, vrings: info.vrings.map { vring in
            VringView(info: vring,
                      pollThread: assignments.first { $0.portName == name && $0.vringIndex == vring.index }?.pollThread,
                      counters: vring.statistics?.snapshot() ?? VirtqueueStatisticsSnapshot())
        })
    }

    func statistics(of port: Port, info: VhostUserDeviceInfo?) -> PortStatistics {
        var statistics = PortStatistics(name: port.spec.name, switchCounters: fabric.statistics(portID: port.id))
        if let info {
            statistics.device = info
            for vring in info.vrings {
                let snapshot = vring.statistics?.snapshot()
                if let snapshot {
                    if vring.index % 2 == 1 { statistics.rx.add(snapshot) } else { statistics.tx.add(snapshot) }
                }
                statistics.vrings.append(.init(index: vring.index, counters: snapshot ?? VirtqueueStatisticsSnapshot()))
            }
        }
        if !port.packetStatistics.isEmpty {
            statistics.kernelSockets = port.packetStatistics.map { $0.snapshot() }
            var sum = PacketSocketPortStatistics.Snapshot()
            for socket in statistics.kernelSockets { sum.add(socket) }
            statistics.kernel = sum
            statistics.linkUp = port.linkUp
        }
        return statistics
    }

    public func statistics(port name: String) throws(PortLookupError) -> PortStatistics {
        guard let port = ports.withLock({ $0[name] }) else { throw .noPort(name) }
        return withDeviceInfos([port], statistics(of:info:))[0]
    }

    public var portStatistics: [PortStatistics] { withDeviceInfos(allPorts, statistics(of:info:)) }

    public var pollThreads: [PollThreadView] {
        let assignments = fabric.queueAssignments
        return fabric.pollThreadStatistics.enumerated().map { index, snapshot in
            PollThreadView(index: index, statistics: snapshot, queues: assignments.filter { $0.pollThread == index })
        }
    }

    public var switchStatistics: SwitchStatistics {
        SwitchStatistics(ports: portStatistics, pollThreads: pollThreads,
                         fdbEntries: fabric.fdb.entries(now: Self.nowSeconds()).count, fdbCapacity: fabric.fdb.capacity,
                         segments: fabric.segmentStatistics())
    }

    // MARK: Forwarding database

    /// The MAC table's clock: monotonic seconds, as the poll threads stamp entries.
    static func nowSeconds() -> UInt32 { UInt32(truncatingIfNeeded: MonotonicClock.nanoseconds() / 1_000_000_000) }

    public var forwardingDatabase: ForwardingDatabaseView {
        let fdb = fabric.fdb
        let entries = fdb.entries(now: Self.nowSeconds()).sorted { ($0.mac, $0.segment) < ($1.mac, $1.segment) }
        return ForwardingDatabaseView(capacity: fdb.capacity, agingSeconds: fdb.agingSeconds, entries: entries.map { entry in
            .init(mac: entry.mac, vlan: entry.segment == 0 ? nil : entry.segment, portName: fabric.portName(id: entry.port),
                  portID: entry.port, ageSeconds: entry.ageSeconds)
        })
    }

    /// Empties the MAC table; returns how many entries it held.
    public func flushForwardingDatabase() -> Int { fabric.fdb.flush() }

    /// Removes one MAC; false when it was not there.
    public func removeForwardingEntry(_ mac: UInt64) -> Bool { fabric.fdb.remove(mac) }
}
