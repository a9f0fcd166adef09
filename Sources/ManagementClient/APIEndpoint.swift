/// Where the daemon's API is: its unix socket or a TCP address.
public enum APIEndpoint: Equatable, Sendable, CustomStringConvertible {
    case unix(path: String)
    case tcp(host: String, port: UInt16, isIPv6: Bool)

    public struct ParseError: Error, CustomStringConvertible { public var description: String }

    public init(parsing text: String) throws(ParseError) {
        if text.hasPrefix("unix://") {
            let path = String(text.dropFirst("unix://".count))
            guard path.hasPrefix("/"), path.utf8.count <= 107 else { throw ParseError(description: "use unix:///absolute/path/to/api.sock (at most 107 bytes)") }
            self = .unix(path: path)
            return
        }
        guard text.hasPrefix("http://") else { throw ParseError(description: "use unix:///path/to/api.sock or http://HOST:PORT") }
        var rest = Substring(text.dropFirst("http://".count))
        if rest.hasSuffix("/") { rest = rest.dropLast() }
        guard !rest.contains("/") else { throw ParseError(description: "the API URL takes no path: http://HOST:PORT") }
        var host: Substring
        let portText: Substring
        var isIPv6 = false
        if rest.hasPrefix("[") {
            guard let close = rest.firstIndex(of: "]"), rest[rest.index(after: close)...].hasPrefix(":") else {
                throw ParseError(description: "an IPv6 address needs brackets and a port: http://[::1]:9870")
            }
            host = rest[rest.index(after: rest.startIndex)..<close]
            portText = rest[rest.index(close, offsetBy: 2)...]
            isIPv6 = true
        } else {
            guard let colon = rest.lastIndex(of: ":") else { throw ParseError(description: "a port is required: http://127.0.0.1:9870") }
            host = rest[..<colon]
            portText = rest[rest.index(after: colon)...]
        }
        if host == "localhost" { host = "127.0.0.1" }
        guard let port = UInt16(portText), port > 0 else { throw ParseError(description: "invalid port \(portText)") }
        let isLiteral = isIPv6 ? host.allSatisfy({ $0.isHexDigit || $0 == ":" || $0 == "." }) && !host.isEmpty
                               : host.split(separator: ".").count == 4 && host.split(separator: ".").allSatisfy({ UInt8($0) != nil })
        guard isLiteral else { throw ParseError(description: "the host must be an IP address or localhost, not \(host)") }
        self = .tcp(host: String(host), port: port, isIPv6: isIPv6)
    }

    public var description: String {
        switch self {
        case .unix(let path): return "unix://" + path
        case .tcp(let host, let port, let isIPv6): return isIPv6 ? "http://[\(host)]:\(port)" : "http://\(host):\(port)"
        }
    }
}
