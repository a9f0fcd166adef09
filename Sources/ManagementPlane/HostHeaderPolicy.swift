import VhostSystem

/// Which `Host` header values a TCP listener answers. A web page whose name an attacker
/// makes resolve to this address (DNS rebinding) can send requests here, but its browser
/// names the attacker's host in `Host`: only names that really mean this listener pass.
/// Those are the listen address, the localhost forms when it is loopback, any IP literal
/// when it is a wildcard address (0.0.0.0, ::; an IP literal cannot be rebound), and the
/// names given with `--api-host`. A port, when given, must be the listener's.
public struct HostHeaderPolicy: Sendable, Equatable {
    /// Lowercased, IPv6 literals in brackets.
    public private(set) var names: Set<String>
    public var port: UInt16
    public var anyIPLiteral: Bool

    public init(listen: TCPSocket.Address, port: UInt16, extraNames: [String] = []) {
        var names = Set(extraNames.map { $0.lowercased() })
        names.insert(listen.isIPv6 ? "[\(listen.host.lowercased())]" : listen.host)
        if listen.isLoopback { names.formUnion(["localhost", "127.0.0.1", "[::1]"]) }
        self.names = names
        self.port = port
        anyIPLiteral = listen.host == "0.0.0.0" || listen.host == "::"
    }

    /// True when a request with this `Host` header (nil: none) is for this listener.
    public func allows(_ header: String?) -> Bool {
        guard let header, let (host, port) = Self.split(header.trimmingSpaces.lowercased()) else { return false }
        if let port, port != self.port { return false }
        return names.contains(host) || (anyIPLiteral && Self.isIPLiteral(host))
    }

    /// "name", "name:port", "[v6]" or "[v6]:port"; nil when malformed.
    static func split(_ text: String) -> (host: String, port: UInt16?)? {
        var host = Substring(text)
        var port: UInt16?
        if let close = text.lastIndex(of: "]"), text.hasPrefix("[") {
            host = text[...close]
            let rest = text[text.index(after: close)...]
            if !rest.isEmpty {
                guard rest.hasPrefix(":"), let value = UInt16(rest.dropFirst()) else { return nil }
                port = value
            }
        } else if let colon = text.firstIndex(of: ":") {
            host = text[..<colon]
            guard let value = UInt16(text[text.index(after: colon)...]) else { return nil }
            port = value
        }
        guard !host.isEmpty else { return nil }
        return (String(host), port)
    }

    /// A dotted-quad IPv4 literal, or a bracketed IPv6 one.
    static func isIPLiteral(_ host: String) -> Bool {
        if host.hasPrefix("[") {
            let inner = host.dropFirst().dropLast()
            return host.hasSuffix("]") && inner.contains(":") && inner.allSatisfy { $0.isHexDigit || $0 == ":" || $0 == "." }
        }
        let octets = host.split(separator: ".", omittingEmptySubsequences: false)
        return octets.count == 4 && octets.allSatisfy { $0.count <= 3 && UInt8($0) != nil }
    }
}
