import VhostSystem

/// A kernel port's packet sockets: one per poll thread, so receive scales with
/// `--pmd-threads`. With more than one they form a PACKET_FANOUT_HASH group: the kernel
/// hands each flow to one socket (in order), each socket has its own rings and counters, and
/// the switch places each socket's receive side on its own thread (`Switch.buildSnapshots`)
/// and lets poll thread t transmit through socket t, without a lock. With one poll thread
/// it is the one socket of before, without fanout.
///
/// Control side only: the poll threads reach the sockets through the snapshots.
public final class PacketSocketGroup: @unchecked Sendable {
    public let sockets: [PacketSocketPort]

    init(sockets: [PacketSocketPort]) {
        precondition(!sockets.isEmpty, "a group has a socket")
        self.sockets = sockets
    }

    /// Opens `count` sockets on `interface` (one without fanout; several in a new fanout
    /// group), each with the statistics of the same index in `statistics` (counts that go
    /// on across a reopen) or fresh ones.
    public static func open(interface: String, count: Int, configuration: PacketSocket.Configuration = PacketSocket.Configuration(),
                            statistics: [PacketSocketPortStatistics] = []) throws(SystemError) -> PacketSocketGroup {
        let count = max(1, count)
        var sockets: [PacketSocketPort] = []
        var configuration = configuration
        configuration.fanout = count > 1 ? .newGroup : .none
        for index in 0..<count {
            let counters = index < statistics.count ? statistics[index] : PacketSocketPortStatistics()
            let socket = try PacketSocketPort.open(interface: interface, configuration: configuration, statistics: counters)
            if index == 0, let group = socket.socket.fanoutGroup { configuration.fanout = .join(group) }
            sockets.append(socket)
        }
        return PacketSocketGroup(sockets: sockets)
    }

    /// New sockets on the same interface name, in a new group, keeping the statistics: for
    /// an interface that was deleted and re-created.
    public func reopened() throws(SystemError) -> PacketSocketGroup {
        try Self.open(interface: first.interfaceName, count: sockets.count, configuration: first.socket.configuration,
                      statistics: statistics)
    }

    public var first: PacketSocketPort { sockets[0] }
    public var statistics: [PacketSocketPortStatistics] { sockets.map(\.statistics) }
    public var mtu: Int { first.socket.mtu }
    public func linkIsUp() -> Bool { first.linkIsUp() }
    public func linkState() -> PacketSocket.LinkState { first.linkState() }

    /// The kernel's counters of every socket (control side, about once a second).
    public func collectKernelStatistics() {
        for socket in sockets { socket.collectKernelStatistics() }
    }
}
