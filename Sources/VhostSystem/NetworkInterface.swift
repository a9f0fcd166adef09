import CVhostShims
import Glibc

/// Host network interfaces by name, outside any socket.
public enum NetworkInterface {
    /// if_nametoindex in the calling thread's network namespace; nil when there is none.
    public static func index(named name: String) -> Int32? {
        let index = vhost_shims_if_nametoindex(name)
        return index == 0 ? nil : Int32(bitPattern: index)
    }

    /// Sets or clears IFF_UP (SIOCSIFFLAGS; needs CAP_NET_ADMIN).
    public static func setUp(_ name: String, _ up: Bool) throws(SystemError) {
        let fd = try controlSocket()
        try systemCall("SIOCSIFFLAGS(\(name))") { vhost_shims_interface_set_up(fd.rawValue, name, up ? 1 : 0) }
    }

    /// SIOCGIFMTU.
    public static func mtu(of name: String) throws(SystemError) -> Int {
        let fd = try controlSocket()
        return Int(try systemCall("SIOCGIFMTU(\(name))") { vhost_shims_interface_mtu(fd.rawValue, name) })
    }

    /// The state of the interface named `name` that had `index` when a socket was bound to
    /// it: up (IFF_UP and IFF_RUNNING), down, replaced (the name has a new index) or missing.
    /// `socket` is any socket that answers the interface ioctls (AF_PACKET, AF_INET), or -1
    /// for a temporary one (AF_XDP sockets do not answer them).
    public static func linkState(named name: String, index: Int32, socket: Int32 = -1) -> PacketSocket.LinkState {
        let temporary = socket < 0 ? try? controlSocket() : nil
        let fd = temporary?.rawValue ?? socket
        let current = vhost_shims_interface_index(fd, name)
        if current < 0 { return .missing }
        if current != index { return .replaced(newIndex: current) }
        let flags = vhost_shims_interface_flags(fd, name)
        if flags < 0 { return .missing }
        let upAndRunning = Int32(IFF_UP) | Int32(IFF_RUNNING)
        return flags & upAndRunning == upAndRunning ? .up : .down
    }

    /// A datagram socket for the interface ioctls.
    private static func controlSocket() throws(SystemError) -> FileDescriptor {
        FileDescriptor(adopting: try systemCall("socket(AF_INET)") {
            socket(AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        })
    }
}
