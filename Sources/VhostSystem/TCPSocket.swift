import CVhostShims
import Glibc

/// TCP listening sockets for the management API (`--listen 127.0.0.1:9870`).
public enum TCPSocket {
    /// An IPv4 or IPv6 literal address with a port, as given on the command line.
    public struct Address: Equatable, Sendable, CustomStringConvertible {
        public var host: String
        public var port: UInt16
        public var isIPv6: Bool

        /// Parses "127.0.0.1:9870", "[::1]:9870" or "0.0.0.0:9870". Host names are refused:
        /// the daemon binds what it was told, not what a resolver answers today.
        public init?(parsing text: String) {
            let host: Substring
            let portText: Substring
            if text.hasPrefix("[") {
                guard let close = text.firstIndex(of: "]") else { return nil }
                host = text[text.index(after: text.startIndex)..<close]
                let rest = text[text.index(after: close)...]
                guard rest.hasPrefix(":") else { return nil }
                portText = rest.dropFirst()
                isIPv6 = true
            } else {
                guard let colon = text.lastIndex(of: ":") else { return nil }
                host = text[..<colon]
                portText = text[text.index(after: colon)...]
                isIPv6 = false
            }
            guard let port = UInt16(portText), !host.isEmpty else { return nil }
            self.host = String(host)
            self.port = port
            guard (try? TCPSocket.makeAddress(self)) != nil else { return nil }
        }

        /// True for 127.0.0.0/8 and ::1: nobody off this machine can reach it.
        public var isLoopback: Bool {
            if isIPv6 { return host == "::1" || host == "0:0:0:0:0:0:0:1" }
            return host.hasPrefix("127.")
        }

        public var description: String { isIPv6 ? "[\(host)]:\(port)" : "\(host):\(port)" }

        /// Calls `body` with this address as a sockaddr and its length (for bind, connect).
        public func withSocketAddress<Result>(_ body: (UnsafePointer<sockaddr>, socklen_t) throws(SystemError) -> Result)
            throws(SystemError) -> Result {
            var (storage, length) = try TCPSocket.makeAddress(self)
            // Unsafe: the storage holds a sockaddr_in or sockaddr_in6 of `length` bytes.
            return try withUnsafePointer(to: &storage) { (pointer) throws(SystemError) -> Result in
                try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { (address) throws(SystemError) -> Result in try body(address, length) }
            }
        }
    }

    /// `address` as the sockaddr_in or sockaddr_in6 that bind and connect take, in a
    /// sockaddr_storage, with its length.
    private static func makeAddress(_ address: Address) throws(SystemError) -> (storage: sockaddr_storage, length: socklen_t) {
        var storage = sockaddr_storage()
        let converted: Bool
        let length: Int
        // Unsafe: sockaddr_storage is large and aligned enough for either address type.
        if address.isIPv6 {
            length = MemoryLayout<sockaddr_in6>.size
            converted = withUnsafeMutablePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { value in
                value.pointee.sin6_family = sa_family_t(AF_INET6)
                value.pointee.sin6_port = address.port.bigEndian
                return inet_pton(AF_INET6, address.host, &value.pointee.sin6_addr) == 1
            } }
        } else {
            length = MemoryLayout<sockaddr_in>.size
            converted = withUnsafeMutablePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { value in
                value.pointee.sin_family = sa_family_t(AF_INET)
                value.pointee.sin_port = address.port.bigEndian
                return inet_pton(AF_INET, address.host, &value.pointee.sin_addr) == 1
            } }
        }
        guard converted else { throw SystemError("inet_pton(\(address.host))", errno: EINVAL) }
        return (storage, socklen_t(length))
    }

    /// A non-blocking, close-on-exec listening socket bound to `address` (SO_REUSEADDR, so a
    /// restarted daemon does not wait for TIME_WAIT).
    public static func listen(_ address: Address, backlog: Int32 = 64) throws(SystemError) -> FileDescriptor {
        let family = address.isIPv6 ? AF_INET6 : AF_INET
        let fd = FileDescriptor(adopting: try systemCall("socket") {
            socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        })
        var one: Int32 = 1
        try systemCall("setsockopt(SO_REUSEADDR)") {
            setsockopt(fd.rawValue, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        }
        if address.isIPv6 {
            try systemCall("setsockopt(IPV6_V6ONLY)") {
                setsockopt(fd.rawValue, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &one, socklen_t(MemoryLayout<Int32>.size))
            }
        }
        try address.withSocketAddress { (socketAddress, length) throws(SystemError) in
            _ = try systemCall("bind(\(address))") { bind(fd.rawValue, socketAddress, length) }
        }
        try systemCall("listen") { Glibc.listen(fd.rawValue, backlog) }
        try fd.setNonBlocking()
        return fd
    }

    /// The port a socket is bound to (for `--listen 127.0.0.1:0` in tests).
    public static func boundPort(_ fd: FileDescriptor) throws(SystemError) -> UInt16 {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        try systemCall("getsockname") {
            withUnsafeMutablePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd.rawValue, $0, &length) }
            }
        }
        let family = storage.ss_family
        return withUnsafePointer(to: &storage) { pointer in
            if family == sa_family_t(AF_INET6) {
                return pointer.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { UInt16(bigEndian: $0.pointee.sin6_port) }
            }
            return pointer.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { UInt16(bigEndian: $0.pointee.sin_port) }
        }
    }
}
