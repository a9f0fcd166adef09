import CVhostShims
import Glibc

/// The service manager's notification socket: sd_notify(3) without libsystemd. systemd
/// (Type=notify) names an AF_UNIX datagram socket in $NOTIFY_SOCKET, a path or, when it
/// starts with '@', an abstract name; each datagram is newline-separated KEY=VALUE
/// assignments (READY=1, STOPPING=1, MAINPID=, WATCHDOG=1).
public final class ServiceManagerSocket: Sendable {
    public let address: String
    private let socket: FileDescriptor

    /// Connects a datagram socket to `address` ("/path" or "@abstract").
    public init(address: String) throws(SystemError) {
        self.address = address
        let (storage, length) = try Self.makeAddress(address)
        socket = FileDescriptor(adopting: try systemCall("socket(AF_UNIX, SOCK_DGRAM)") {
            Glibc.socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        })
        var address = storage
        // Unsafe: connect(2) takes the sockaddr_un as a sockaddr pointer.
        try systemCall("connect(\(self.address))") {
            withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(socket.rawValue, $0, length) }
            }
        }
    }

    /// The socket $NOTIFY_SOCKET names; nil when it is unset (not started by a service
    /// manager that wants to hear: nothing to tell). Throws when it names one that cannot be
    /// reached.
    public static func fromEnvironment() throws(SystemError) -> ServiceManagerSocket? {
        guard let value = getenv("NOTIFY_SOCKET") else { return nil }
        let address = String(cString: value)
        return address.isEmpty ? nil : try ServiceManagerSocket(address: address)
    }

    /// $WATCHDOG_USEC, when the service manager expects this process to ping: set, positive,
    /// and $WATCHDOG_PID (when set) is this process.
    public static func watchdogMicrosecondsFromEnvironment() -> UInt64? {
        guard let raw = getenv("WATCHDOG_USEC"), let microseconds = UInt64(String(cString: raw)), microseconds > 0 else { return nil }
        if let pid = getenv("WATCHDOG_PID"), Int32(String(cString: pid)) != getpid() { return nil }
        return microseconds
    }

    /// This process's id, for MAINPID=.
    public static var processID: Int32 { getpid() }

    /// Sends one datagram of `state` (e.g. "READY=1" or "MAINPID=42\nREADY=1").
    public func send(_ state: String) throws(SystemError) {
        _ = try UnixSocket.send(socket, bytes: Array(state.utf8))
    }

    /// sd_notify_barrier(3): sends BARRIER=1 with a descriptor and waits until the service
    /// manager has closed it, which it does once it has handled every earlier
    /// message. False when `timeoutMilliseconds` passed first.
    public func barrier(timeoutMilliseconds: Int32) throws(SystemError) -> Bool {
        // A socket pair instead of sd_notify_barrier's pipe (pipe2 is not visible to Swift): the
        // kept end reports POLLHUP just the same once every copy of the sent end is closed.
        let (kept, sent) = try UnixSocket.pair()
        _ = try UnixSocket.send(socket, bytes: Array("BARRIER=1".utf8), fds: [sent])
        sent.close()
        var waiting = pollfd(fd: kept.rawValue, events: 0, revents: 0)
        let deadline = MonotonicClock.nanoseconds() &+ UInt64(max(0, timeoutMilliseconds)) &* 1_000_000
        while true {
            let now = MonotonicClock.nanoseconds()
            guard now < deadline else { return false }
            let left = Int64((deadline - now + 999_999) / 1_000_000)
            // Returns with POLLHUP once every copy of the write end is closed.
            if try systemCall("poll", { poll(&waiting, 1, Int32(min(left, Int64(Int32.max)))) }) > 0 { return true }
        }
    }

    /// A datagram socket bound at `path`: what the service manager listens on. Tests stand in
    /// for systemd with it; read it with `UnixSocket.receive`.
    public static func listen(path: String) throws(SystemError) -> FileDescriptor {
        let (storage, length) = try makeAddress(path)
        let fd = FileDescriptor(adopting: try systemCall("socket(AF_UNIX, SOCK_DGRAM)") {
            Glibc.socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        })
        var address = storage
        // Unsafe: bind(2) takes the sockaddr_un as a sockaddr pointer.
        try systemCall("bind(\(path))") {
            withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd.rawValue, $0, length) }
            }
        }
        return fd
    }

    /// sockaddr_un for a path or, with a leading '@', an abstract name (a NUL first byte, and
    /// a length that ends at the name: abstract names are not NUL-terminated).
    private static func makeAddress(_ text: String) throws(SystemError) -> (sockaddr_un, socklen_t) {
        var bytes = Array(text.utf8)
        let abstract = bytes.first == UInt8(ascii: "@")
        if abstract { bytes[0] = 0 }
        let limit = abstract ? UnixSocket.maxPathLength + 1 : UnixSocket.maxPathLength
        guard bytes.count > (abstract ? 1 : 0), bytes.count <= limit, !bytes.dropFirst().contains(0), bytes.first == 0 || bytes.first == UInt8(ascii: "/") else {
            throw SystemError("notify socket \(text)", errno: EINVAL)
        }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        // Unsafe: sun_path is a C array; the bytes were checked to fit above.
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        let pathOffset = MemoryLayout<sockaddr_un>.offset(of: \.sun_path) ?? 2
        return (address, socklen_t(pathOffset + bytes.count + (abstract ? 0 : 1)))
    }
}
