import CVhostShims
import Glibc

/// Unix stream sockets with SCM_RIGHTS fd passing: the vhost-user transport.
public enum UnixSocket {
    /// The longest path a sockaddr_un holds (with its terminating NUL).
    public static let maxPathLength = MemoryLayout.size(ofValue: sockaddr_un().sun_path) - 1

    /// Binds and listens on `path`. A stale socket file left by a crashed run is replaced
    /// only when nobody accepts connections on it; a live socket or a non-socket file there
    /// is an error (EADDRINUSE / EEXIST), so we never steal or delete someone else's file.
    public static func listen(path: String, backlog: Int32 = 16, permissions: mode_t? = nil) throws(SystemError) -> FileDescriptor {
        try removeStaleSocket(at: path)
        let fd = try makeSocket()
        var address = try makeAddress(path)
        try systemCall("bind(\(path))") {
            withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd.rawValue, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
            }
        }
        if let permissions {
            try systemCall("chmod(\(path))") { chmod(path, permissions) }
        }
        try systemCall("listen") { Glibc.listen(fd.rawValue, backlog) }
        try fd.setNonBlocking()
        return fd
    }

    /// Connects to `path`. Non-blocking after the connect (unix connects complete at once).
    public static func connect(path: String) throws(SystemError) -> FileDescriptor {
        let fd = try makeSocket()
        var address = try makeAddress(path)
        try systemCall("connect(\(path))") {
            withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd.rawValue, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
            }
        }
        try fd.setNonBlocking()
        return fd
    }

    /// Accepts one pending connection; nil when none is pending.
    public static func accept(_ listener: FileDescriptor) throws(SystemError) -> FileDescriptor? {
        while true {
            let raw = vhost_shims_accept_nonblocking(listener.rawValue)
            if raw >= 0 { return FileDescriptor(adopting: raw) }
            let code = vhost_shims_errno()
            if code == EINTR || code == ECONNABORTED { continue }
            if code == EAGAIN || code == EWOULDBLOCK { return nil }
            throw SystemError("accept4", errno: code)
        }
    }

    /// A connected pair: a fake front-end and back-end in unit tests.
    public static func pair() throws(SystemError) -> (FileDescriptor, FileDescriptor) {
        var fds: [Int32] = [-1, -1]
        try systemCall("socketpair") { socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds) }
        return (FileDescriptor(adopting: fds[0]), FileDescriptor(adopting: fds[1]))
    }

    /// Sends `bytes` with `fds` attached (at most 8). Returns the bytes sent, which can be
    /// fewer than asked on a non-blocking socket.
    public static func send(_ socket: FileDescriptor, _ bytes: UnsafeRawBufferPointer, fds: [Int32] = []) throws(SystemError) -> Int {
        try systemCall("sendmsg") {
            fds.withUnsafeBufferPointer { vhost_shims_send_with_fds(socket.rawValue, bytes.baseAddress, bytes.count, $0.baseAddress, Int32($0.count)) }
        }
    }

    public struct Received {
        /// Bytes read; 0 means the peer closed the connection.
        public var byteCount: Int
        /// Received descriptors, owned by the caller.
        public var descriptors: [FileDescriptor]
        /// More fds arrived than fit, or the kernel truncated them: the message must be refused.
        public var descriptorsTruncated: Bool
    }

    /// One non-blocking recvmsg collecting SCM_RIGHTS fds. Throws EAGAIN when nothing is ready.
    public static func receive(_ socket: FileDescriptor, into buffer: UnsafeMutableRawBufferPointer, maxDescriptors: Int = 8) throws(SystemError) -> Received {
        var raw = [Int32](repeating: -1, count: Int(VHOST_SHIMS_MAX_FDS) * 4)
        var count: Int32 = 0
        var truncated: Int32 = 0
        let n = try systemCall("recvmsg") {
            raw.withUnsafeMutableBufferPointer {
                vhost_shims_recv_with_fds(socket.rawValue, buffer.baseAddress, buffer.count, $0.baseAddress, Int32(min(maxDescriptors, $0.count)), &count, &truncated)
            }
        }
        let owned = raw.prefix(Int(count)).map { FileDescriptor(adopting: $0) }
        return Received(byteCount: n, descriptors: owned, descriptorsTruncated: truncated != 0)
    }

    private static func makeSocket() throws(SystemError) -> FileDescriptor {
        FileDescriptor(adopting: try systemCall("socket(AF_UNIX)") { socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0) })
    }

    private static func makeAddress(_ path: String) throws(SystemError) -> sockaddr_un {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard !bytes.isEmpty, bytes.count <= maxPathLength, !bytes.contains(0) else {
            throw SystemError("socket path \(path)", errno: ENAMETOOLONG)
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
        }
        return address
    }

    private static func removeStaleSocket(at path: String) throws(SystemError) {
        var info = stat()
        guard lstat(path, &info) == 0 else { return }
        guard info.st_mode & S_IFMT == S_IFSOCK else { throw SystemError("bind(\(path)): exists and is not a socket", errno: EEXIST) }
        if let probe = try? connect(path: path) {
            probe.close()
            throw SystemError("bind(\(path)): another process is listening", errno: EADDRINUSE)
        }
        try systemCall("unlink(\(path))") { unlink(path) }
    }
}

extension UnixSocket {
    /// A message read without unsafe pointers in the caller: bytes plus owned fds.
    public struct ReceivedBytes {
        /// Empty means the peer closed the connection.
        public var bytes: [UInt8]
        public var descriptors: [FileDescriptor]
        public var descriptorsTruncated: Bool
    }

    /// Reads up to `maxBytes` (non-blocking). Throws a SystemError with EAGAIN when nothing is ready.
    public static func receive(_ socket: FileDescriptor, maxBytes: Int, maxDescriptors: Int = 8) throws(SystemError) -> ReceivedBytes {
        var bytes = [UInt8](repeating: 0, count: maxBytes)
        // Unsafe: recvmsg writes into the array's storage, bounded by its count.
        let result = try bytes.withUnsafeMutableBytes { buffer in
            Result { () throws(SystemError) -> Received in try receive(socket, into: buffer, maxDescriptors: maxDescriptors) }
        }.get()
        bytes.removeSubrange(result.byteCount...)
        return ReceivedBytes(bytes: bytes, descriptors: result.descriptors, descriptorsTruncated: result.descriptorsTruncated)
    }

    /// Sends `bytes` with `fds` attached; returns how many bytes went out.
    public static func send(_ socket: FileDescriptor, bytes: [UInt8], fds: [FileDescriptor] = []) throws(SystemError) -> Int {
        let raw = fds.map(\.rawValue)
        // Unsafe: sendmsg reads the array's storage, bounded by its count.
        return try bytes.withUnsafeBytes { buffer in
            Result { () throws(SystemError) -> Int in try send(socket, buffer, fds: raw) }
        }.get()
    }
}
