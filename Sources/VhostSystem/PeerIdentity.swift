import CVhostShims
import Glibc

/// Who is at the other end of an accepted API connection (per-client limits), and who we
/// are (who may own a secret we read).
public enum PeerIdentity {
    /// The effective user id of this process.
    public static var ownUserID: UInt32 { geteuid() }

    /// SO_PEERCRED: the user id of the process that connected the unix socket `fd`.
    public static func unixPeerUserID(_ fd: Int32) -> UInt32? { unixPeerCredentials(fd)?.uid }

    /// SO_PEERCRED: the process id at the other end of the unix socket `fd` (a hand-over's new
    /// process, which becomes systemd's main process).
    public static func unixPeerProcessID(_ fd: Int32) -> Int32? { unixPeerCredentials(fd)?.pid }

    private static func unixPeerCredentials(_ fd: Int32) -> (pid: Int32, uid: UInt32, gid: UInt32)? {
        // struct ucred {pid_t pid; uid_t uid; gid_t gid;} (Glibc hides it behind _GNU_SOURCE).
        var credentials: (pid: Int32, uid: UInt32, gid: UInt32) = (0, 0, 0)
        var length = socklen_t(MemoryLayout.size(ofValue: credentials))
        guard (try? systemCall("getsockopt(SO_PEERCRED)", { getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &credentials, &length) })) != nil
        else { return nil }
        return credentials
    }

    /// getpeername: the remote address of the TCP socket `fd` as text ("10.1.2.3", "::1",
    /// "::ffff:127.0.0.2"); nil when it is not an IP socket.
    public static func tcpPeerAddress(_ fd: Int32) -> String? {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        guard (try? systemCall("getpeername", {
            withUnsafeMutablePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getpeername(fd, $0, &length) }
            }
        })) != nil else { return nil }
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
        let family = Int32(storage.ss_family)
        let converted: UnsafePointer<CChar>? = withUnsafePointer(to: &storage) { pointer in
            switch family {
            case AF_INET:
                return pointer.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { address in
                    withUnsafePointer(to: address.pointee.sin_addr) { inet_ntop(AF_INET, $0, &text, socklen_t(text.count)) }
                }
            case AF_INET6:
                return pointer.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { address in
                    withUnsafePointer(to: address.pointee.sin6_addr) { inet_ntop(AF_INET6, $0, &text, socklen_t(text.count)) }
                }
            default: return nil
            }
        }
        guard converted != nil else { return nil }
        // inet_ntop wrote a NUL-terminated address into `text`.
        let bytes = text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
        return String(decoding: bytes, as: UTF8.self)
    }
}
