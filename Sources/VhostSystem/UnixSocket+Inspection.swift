import CVhostShims
import Glibc

/// What a received fd is, before it is trusted as one: a live hand-over brings sockets from
/// another process (a peer, not to be believed blindly).
extension UnixSocket {
    /// A unix stream socket that is connected (not listening).
    public static func isConnectedStream(_ fd: FileDescriptor) -> Bool {
        isUnixStream(fd) && option(fd, SO_ACCEPTCONN) == 0
    }

    /// The path a listening unix stream socket is bound to; nil for anything else.
    public static func listeningPath(_ fd: FileDescriptor) -> String? {
        guard isUnixStream(fd), option(fd, SO_ACCEPTCONN) == 1 else { return nil }
        var address = sockaddr_un()
        var length = socklen_t(MemoryLayout<sockaddr_un>.size)
        // Unsafe: getsockname writes at most `length` bytes into the sockaddr_un.
        let result = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd.rawValue, $0, &length) }
        }
        guard result == 0 else { return nil }
        // Unsafe: sun_path is a fixed C array; read up to its NUL.
        return withUnsafeBytes(of: &address.sun_path) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
    }

    /// The peer of a connected socket has closed (or shut down its writing side), whatever
    /// data it left unread: a poll(2) with time-out 0, not a read.
    public static func peerHasHungUp(_ fd: FileDescriptor) -> Bool {
        var entry = pollfd(fd: fd.rawValue, events: Int16(VHOST_SHIMS_POLLRDHUP), revents: 0)
        guard Glibc.poll(&entry, 1, 0) == 1 else { return false }
        return Int32(entry.revents) & (VHOST_SHIMS_POLLRDHUP | POLLHUP | POLLERR | POLLNVAL) != 0
    }

    /// A listening TCP socket (the API's listener).
    public static func isListeningTCP(_ fd: FileDescriptor) -> Bool {
        let domain = option(fd, SO_DOMAIN)
        return (domain == AF_INET || domain == AF_INET6) && option(fd, SO_TYPE) == Int32(SOCK_STREAM.rawValue)
            && option(fd, SO_ACCEPTCONN) == 1
    }

    private static func isUnixStream(_ fd: FileDescriptor) -> Bool {
        option(fd, SO_DOMAIN) == AF_UNIX && option(fd, SO_TYPE) == Int32(SOCK_STREAM.rawValue)
    }

    private static func option(_ fd: FileDescriptor, _ name: Int32) -> Int32? {
        var value: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        return getsockopt(fd.rawValue, SOL_SOCKET, name, &value, &length) == 0 ? value : nil
    }
}
