import CVhostShims
import Glibc

/// Running code inside another network namespace, for opening sockets there (tests, and
/// interfaces that live in a pod's namespace).
public enum NetworkNamespace {
    /// Runs `body` with the calling thread in the namespace at `path` (e.g.
    /// /var/run/netns/NAME), then moves the thread back. Sockets made inside stay in that
    /// namespace after the thread leaves it.
    public static func run<T>(path: String, _ body: () throws(SystemError) -> T) throws(SystemError) -> T {
        let original = FileDescriptor(adopting: try systemCall("open(/proc/thread-self/ns/net)") {
            open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC)
        })
        let target = FileDescriptor(adopting: try systemCall("open(\(path))") { open(path, O_RDONLY | O_CLOEXEC) })
        try systemCall("setns(\(path))") { vhost_shims_setns_net(target.rawValue) }
        defer {
            // A thread left in the wrong namespace would silently misroute everything after.
            let back = vhost_shims_setns_net(original.rawValue)
            precondition(back == 0, "cannot return to the original network namespace (errno \(vhost_shims_errno()))")
        }
        return try body()
    }
}
