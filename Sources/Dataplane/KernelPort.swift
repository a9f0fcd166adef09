/// A port's kernel side as the switch and the port service hold it: AF_PACKET sockets (one
/// per poll thread in a fanout group, `PacketSocketGroup`) or an AF_XDP socket (`AfXdpPort`).
/// Control side only: the poll threads see its `channels`' drivers.
public enum KernelPort: Sendable {
    case packetSockets(PacketSocketGroup)
    case afXdp(AfXdpPort)

    /// One socket as `Switch.buildSnapshots` places it: its receive side on a poll thread,
    /// its transmit side for the threads that send through it.
    struct Channel {
        /// What the poll loop calls (unretained: the snapshot keeps `object`).
        var driver: PortDriver
        /// The fd a sleeping poll thread waits on for received frames.
        var pollDescriptor: Int32
        /// The object a snapshot keeps alive, and the key of its transmit lock.
        var object: AnyObject
    }

    /// The port's sockets: a packet-socket group's, in order (socket i is receive queue i,
    /// poll thread t sends through socket t mod count); an AF_XDP port's one socket (its
    /// queues are served together).
    var channels: [Channel] {
        switch self {
        case .packetSockets(let group):
            group.sockets.map { Channel(driver: PortDriver($0), pollDescriptor: $0.pollDescriptor, object: $0) }
        case .afXdp(let port): [Channel(driver: PortDriver(port), pollDescriptor: port.pollDescriptor, object: port)]
        }
    }

    /// The GUEST_* offloads a frame sent there may keep.
    var acceptedOffloadFeatures: UInt64 {
        switch self {
        case .packetSockets(let group): group.first.acceptedOffloadFeatures
        case .afXdp(let port): port.acceptedOffloadFeatures
        }
    }

    /// The packet-socket group of an af-packet port; nil for af-xdp.
    public var packetSocketGroup: PacketSocketGroup? {
        if case .packetSockets(let group) = self { group } else { nil }
    }

    /// The AF_XDP socket of an af-xdp port; nil for af-packet.
    public var afXdpPort: AfXdpPort? {
        if case .afXdp(let port) = self { port } else { nil }
    }

    /// Each channel's counters (af-packet and af-xdp share the kernel-socket family).
    public var statistics: [PacketSocketPortStatistics] {
        switch self {
        case .packetSockets(let group): group.statistics
        case .afXdp(let port): [port.statistics]
        }
    }
}
