// CNISystem: the system calls only the CNI plugin makes (its own process and standard
// streams, IPAM child processes, short client connections with deadlines). They live apart
// from VhostSystem so that the daemon's system module carries nothing the daemon does not
// use; the same rules hold here (libc behind `systemCall`, errno as `SystemError`).
import CVhostShims
import Glibc
import VhostSystem

/// Blocking-style client connections with deadlines, for short request/response exchanges
/// (the HTTP/1.1 calls of the management API's clients: the CNI plugin on the unix socket,
/// vhost-switchctl on it or on TCP). Every operation takes an absolute deadline from
/// `MonotonicClock.nanoseconds()`; passing it throws ETIMEDOUT.
public enum StreamClient {
    /// A deadline `milliseconds` from now.
    public static func deadline(afterMilliseconds milliseconds: Int) -> UInt64 {
        MonotonicClock.nanoseconds() &+ UInt64(max(0, milliseconds)) &* 1_000_000
    }

    /// Connects to a unix stream socket (a unix connect completes or fails at once).
    public static func connectUnix(path: String) throws(SystemError) -> FileDescriptor {
        try UnixSocket.connect(path: path)
    }

    /// Connects to an IPv4 or IPv6 literal address, giving up at `deadline` (vhost-switchctl
    /// `--api http://...`; the CNI plugin takes the unix socket only). The returned socket is
    /// non-blocking and close-on-exec.
    public static func connectTCP(_ address: TCPSocket.Address, deadline: UInt64) throws(SystemError) -> FileDescriptor {
        let family = address.isIPv6 ? AF_INET6 : AF_INET
        let fd = FileDescriptor(adopting: try systemCall("socket") {
            socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        })
        let result = try address.withSocketAddress { Glibc.connect(fd.rawValue, $0, $1) }
        if result == 0 { return fd }
        let code = vhost_shims_errno()
        guard code == EINPROGRESS || code == EINTR else { throw SystemError("connect(\(address))", errno: code) }
        try wait(fd, for: Int16(POLLOUT), deadline: deadline, operation: "connect(\(address))")
        var pending: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        try systemCall("getsockopt(SO_ERROR)") { getsockopt(fd.rawValue, SOL_SOCKET, SO_ERROR, &pending, &length) }
        if pending != 0 { throw SystemError("connect(\(address))", errno: pending) }
        return fd
    }

    /// Sends all of `bytes` (MSG_NOSIGNAL: a closed peer is EPIPE, not a signal).
    public static func sendAll(_ fd: FileDescriptor, _ bytes: [UInt8], deadline: UInt64) throws(SystemError) {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { buffer in
                Glibc.send(fd.rawValue, buffer.baseAddress! + offset, buffer.count - offset, Int32(MSG_NOSIGNAL))
            }
            if n >= 0 { offset += n; continue }
            let code = vhost_shims_errno()
            if code == EINTR { continue }
            guard code == EAGAIN || code == EWOULDBLOCK else { throw SystemError("send", errno: code) }
            try wait(fd, for: Int16(POLLOUT), deadline: deadline, operation: "send")
        }
    }

    /// Reads until the peer closes the connection, or until `isComplete` says the bytes so far
    /// are a whole message. More than `maxBytes` is EFBIG.
    public static func receive(_ fd: FileDescriptor, maxBytes: Int, deadline: UInt64,
                               isComplete: ([UInt8]) -> Bool = { _ in false }) throws(SystemError) -> [UInt8] {
        var result: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 16384)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.recv(fd.rawValue, $0.baseAddress, $0.count, 0) }
            if n == 0 { return result }
            if n > 0 {
                result.append(contentsOf: chunk[0..<n])
                if result.count > maxBytes { throw SystemError("recv: more than \(maxBytes) bytes", errno: EFBIG) }
                if isComplete(result) { return result }
                continue
            }
            let code = vhost_shims_errno()
            if code == EINTR { continue }
            guard code == EAGAIN || code == EWOULDBLOCK else { throw SystemError("recv", errno: code) }
            try wait(fd, for: Int16(POLLIN), deadline: deadline, operation: "recv")
        }
    }

    /// poll() for `events` until `deadline`; ETIMEDOUT when it passes.
    public static func wait(_ fd: FileDescriptor, for events: Int16, deadline: UInt64, operation: String) throws(SystemError) {
        while true {
            let now = MonotonicClock.nanoseconds()
            guard now < deadline else { throw SystemError(operation, errno: ETIMEDOUT) }
            let milliseconds = Int32(min(UInt64(Int32.max), (deadline - now + 999_999) / 1_000_000))
            var entry = pollfd(fd: fd.rawValue, events: events, revents: 0)
            let ready = poll(&entry, 1, milliseconds)
            if ready > 0 { return }
            if ready < 0 {
                let code = vhost_shims_errno()
                if code != EINTR { throw SystemError("poll(\(operation))", errno: code) }
            }
        }
    }
}

extension SystemError {
    /// ENOENT: no such file (for a unix socket: nobody ever bound it, or it was removed).
    public var noSuchFile: Bool { errno == ENOENT }
    /// ECONNREFUSED: nobody listens (a stale unix socket file or a closed TCP port).
    public var connectionRefused: Bool { errno == ECONNREFUSED }
    public var timedOut: Bool { errno == ETIMEDOUT }
    /// EPROTO: the peer answered something unreadable (`protocolError`).
    public var isProtocolError: Bool { errno == EPROTO }
    /// strerror's text alone ("No such file or directory"), for messages that say the operation themselves.
    public var reasonText: String { String(cString: strerror(errno)) }

    /// EINVAL, for refusing an argument before any system call.
    public static func invalidArgument(_ operation: String) -> SystemError { SystemError(operation, errno: EINVAL) }
    /// EPROTO, for a peer that answered something unreadable.
    public static func protocolError(_ operation: String) -> SystemError { SystemError(operation, errno: EPROTO) }
}
