import CNISystem
import VhostSystem

/// A minimal HTTP/1.1 client for the daemon's REST API: one request per connection
/// ("Connection: close"), over the unix socket, with a deadline on the whole exchange.
struct APIClient {
    var endpoint: APIEndpoint
    var token: String?
    var timeoutMilliseconds = 10_000

    struct Response {
        var status: Int
        var body: [UInt8]
        var json: JSONValue? { try? JSONValue.parse(body) }
        /// The daemon's {"error": {"code", "message"}}, as "code: message".
        var errorText: String {
            guard let error = json?["error"] else { return String(decoding: body.prefix(512), as: UTF8.self) }
            return (error["code"]?.stringValue ?? "error") + ": " + (error["message"]?.stringValue ?? "")
        }
    }

    /// The daemon could not be reached or did not answer: worth retrying later.
    struct Unreachable: Error, CustomStringConvertible {
        var endpoint: APIEndpoint
        var reason: SystemError
        /// No API socket file at all: the daemon is not installed or not running on this node.
        var socketMissing: Bool { reason.noSuchFile }
        var description: String { "\(endpoint): \(reason)" }
    }

    /// The token in `path` (already checked against the allow-list): a regular file, not a
    /// symlink, holding one line.
    static func readToken(_ path: String?) throws(CNIError) -> String? {
        guard let path, let slash = path.lastIndex(of: "/") else { return nil }
        let bytes: [UInt8]
        do {
            bytes = try DirectoryHandle.open(slash == path.startIndex ? "/" : String(path[..<slash]), followLinks: true)
                .readFile(String(path[path.index(after: slash)...]), maxBytes: 4096)
        } catch {
            if error.noSuchFile { throw CNIError(.invalidNetworkConfig, "apiTokenFile \(path) does not exist") }
            throw CNIError(.ioFailure, "cannot read apiTokenFile \(path)", details: "\(error) (a symlink or anything but a regular file is refused)")
        }
        let token = String(decoding: bytes, as: UTF8.self).trimmingSpaces()
        guard !token.isEmpty, !token.contains("\n"), !token.contains("\r") else {
            throw CNIError(.invalidNetworkConfig, "apiTokenFile \(path) must hold one token on one line")
        }
        return token
    }

    func request(_ method: String, _ path: String, body: JSONValue? = nil) throws(Unreachable) -> Response {
        let deadline = StreamClient.deadline(afterMilliseconds: timeoutMilliseconds)
        do throws(SystemError) {
            let socket = try StreamClient.connectUnix(path: endpoint.path)
            defer { socket.close() }
            var head = "\(method) \(path) HTTP/1.1\r\nHost: localhost\r\nUser-Agent: vhost-switch-cni\r\nAccept: application/json\r\nConnection: close\r\n"
            if let token { head += "Authorization: Bearer \(token)\r\n" }
            var payload: [UInt8] = []
            if let body {
                payload = Array(body.rendered().utf8)
                head += "Content-Type: application/json\r\nContent-Length: \(payload.count)\r\n"
            }
            try StreamClient.sendAll(socket, Array((head + "\r\n").utf8) + payload, deadline: deadline)
            let raw = try StreamClient.receive(socket, maxBytes: 4 << 20, deadline: deadline, isComplete: { Self.parse($0, complete: false) != nil })
            guard let response = Self.parse(raw, complete: true) else { throw SystemError.protocolError("malformed HTTP response") }
            return response
        } catch {
            throw Unreachable(endpoint: endpoint, reason: error)
        }
    }

    /// Parses a response. With `complete` false it returns nil until the whole body (by
    /// Content-Length or chunked encoding) has arrived; with `complete` true (the peer closed)
    /// a body without a length runs to the end.
    static func parse(_ raw: [UInt8], complete: Bool) -> Response? {
        let separator: [UInt8] = [13, 10, 13, 10]
        guard raw.count >= 4, let headerEnd = (0...(raw.count - 4)).first(where: { raw[$0..<$0 + 4].elementsEqual(separator) }) else { return nil }
        let headerText = String(decoding: raw[..<headerEnd], as: UTF8.self)
        var lines = headerText.split(separator: "\r\n", omittingEmptySubsequences: false).map(String.init)
        guard !lines.isEmpty else { return nil }
        let statusParts = lines.removeFirst().split(separator: " ", maxSplits: 2)
        guard statusParts.count >= 2, statusParts[0].hasPrefix("HTTP/1."), let status = Int(statusParts[1]) else { return nil }
        var headers: [String: String] = [:]
        for line in lines {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingSpaces()
        }
        let body = Array(raw[(headerEnd + 4)...])
        if status == 204 || status == 304 || (100..<200).contains(status) { return Response(status: status, body: []) }
        if let length = headers["content-length"].flatMap({ Int($0) }) {
            guard body.count >= length else { return nil }
            return Response(status: status, body: Array(body.prefix(length)))
        }
        if headers["transfer-encoding"]?.lowercased().contains("chunked") == true {
            return decodeChunked(body).map { Response(status: status, body: $0) }
        }
        return complete ? Response(status: status, body: body) : nil
    }

    /// The body of a chunked response, or nil while the last (zero) chunk is missing.
    static func decodeChunked(_ bytes: [UInt8]) -> [UInt8]? {
        var result: [UInt8] = []
        var index = 0
        while true {
            guard let lineEnd = (index..<max(index, bytes.count - 1)).first(where: { bytes[$0] == 13 && bytes[$0 + 1] == 10 }) else { return nil }
            let sizeText = String(decoding: bytes[index..<lineEnd], as: UTF8.self).split(separator: ";").first.map(String.init) ?? ""
            guard let size = Int(sizeText.trimmingSpaces(), radix: 16) else { return nil }
            index = lineEnd + 2
            if size == 0 { return result }
            guard bytes.count >= index + size + 2 else { return nil }
            result.append(contentsOf: bytes[index..<index + size])
            index += size + 2
        }
    }
}

extension StringProtocol {
    func trimmingSpaces() -> String {
        let scalars = unicodeScalars
        let isSpace: (Unicode.Scalar) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\r" || $0 == "\n" }
        guard let first = scalars.firstIndex(where: { !isSpace($0) }), let last = scalars.lastIndex(where: { !isSpace($0) }) else { return "" }
        return String(String.UnicodeScalarView(scalars[first...last]))
    }
}
