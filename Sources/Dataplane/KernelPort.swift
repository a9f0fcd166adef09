/// A port's kernel side as the switch and the port service hold it: an AF_PACKET socket
/// (`PacketSocketPort`) or an AF_XDP socket (`AfXdpPort`). Control side only: the poll
/// threads see its `driver`.
public enum KernelPort: Sendable {
    case packetSocket(PacketSocketPort)
    case afXdp(AfXdpPort)

    /// What the poll loop calls (unretained: the snapshot keeps `object`).
    var driver: PortDriver {
        switch self {
        case .packetSocket(let port): PortDriver(port)
        case .afXdp(let port): PortDriver(port)
        }
    }

    /// The fd a sleeping poll thread waits on for received frames.
    var pollDescriptor: Int32 {
        switch self {
        case .packetSocket(let port): port.pollDescriptor
        case .afXdp(let port): port.pollDescriptor
        }
    }

    /// The GUEST_* offloads a frame sent there may keep.
    var acceptedOffloadFeatures: UInt64 {
        switch self {
        case .packetSocket(let port): port.acceptedOffloadFeatures
        case .afXdp(let port): port.acceptedOffloadFeatures
        }
    }

    /// The object a snapshot keeps alive, and the key of its transmit lock.
    var object: AnyObject {
        switch self {
        case .packetSocket(let port): port
        case .afXdp(let port): port
        }
    }

    /// The kernel-socket counters (both types share the family).
    public var statistics: PacketSocketPortStatistics {
        switch self {
        case .packetSocket(let port): port.statistics
        case .afXdp(let port): port.statistics
        }
    }
}
