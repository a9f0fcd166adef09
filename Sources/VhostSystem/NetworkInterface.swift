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
        let fd = FileDescriptor(adopting: try systemCall("socket(AF_INET)") {
            socket(AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        })
        try systemCall("SIOCSIFFLAGS(\(name))") { vhost_shims_interface_set_up(fd.rawValue, name, up ? 1 : 0) }
    }
}
