import VhostSystem

/// Who a request comes from, for per-client limits (event streams): the peer's user id on
/// the unix socket, its IP address on TCP. Every loopback address is one client: a local
/// process could otherwise be 127.0.0.1, 127.0.0.2, ... at will.
enum APIClientIdentity {
    /// "uid:N" or "ip:ADDRESS" ("ip:loopback"); nil when the peer cannot be told.
    static func key(socket fd: Int32, transport: HTTPRequest.Transport) -> String? {
        guard fd >= 0 else { return nil }
        switch transport {
        case .unix: return PeerIdentity.unixPeerUserID(fd).map { "uid:\($0)" }
        case .tcp: return PeerIdentity.tcpPeerAddress(fd).map(key(ipAddress:))
        }
    }

    static func key(ipAddress: String) -> String {
        let address = ipAddress.lowercased()
        let v4 = address.hasPrefix("::ffff:") && address.contains(".") ? String(address.dropFirst(7)) : address
        if v4.hasPrefix("127.") || address == "::1" { return "ip:loopback" }
        return "ip:" + v4
    }
}
