import CNISystem
import VhostSystem

/// A minimal HTTP/1.1 client for the daemon's REST API: one request per connection
/// ("Connection: close"), over the unix socket or TCP, with a deadline on the whole exchange.
/// The CNI plugin and `vhost-switchctl` both use it.
public struct APIClient: Sendable {
    public var endpoint: APIEndpoint
    public var token: String?
    public var userAgent: String
    public var timeoutMilliseconds = 10_000

    public init(endpoint: APIEndpoint, token: String? = nil, userAgent: String = "vhost-switch-cni") {
        self.endpoint = endpoint
        self.token = token
        self.userAgent = userAgent
    }

    public struct Response: Sendable {
        public var status: Int
        public var body: [UInt8]
        public var json: JSONValue? { try? JSONValue.parse(body) }
        /// The daemon's {"error": {"code", "message"}}, as "code: message".
        public var errorText: String {
            guard let error = json?["error"] else { return String(decoding: body.prefix(512), as: UTF8.self) }
            return (error["code"]?.stringValue ?? "error") + ": " + (error["message"]?.stringValue ?? "")
        }
    }

    /// The daemon could not be reached or did not answer: worth retrying later.
    public struct Unreachable: Error, CustomStringConvertible {
        public var endpoint: APIEndpoint
        public var reason: SystemError
        /// No API socket file at all: the daemon is not installed or not running on this node.
        public var socketMissing: Bool { if case .unix = endpoint { return reason.noSuchFile }; return false }
        public var description: String { "\(endpoint): \(reason)" }
    }

    public func request(_ method: String, _ path: String, body: JSONValue? = nil) throws(Unreachable) -> Response {
        let deadline = StreamClient.deadline(afterMilliseconds: timeoutMilliseconds)
        do throws(SystemError) {
            let socket = try send(method, path, body: body, accept: "application/json", deadline: deadline)
            defer { socket.close() }
            let raw = try StreamClient.receive(socket, maxBytes: 4 << 20, deadline: deadline, isComplete: { Self.parse($0, complete: false) != nil })
            guard let response = Self.parse(raw, complete: true) else { throw SystemError.protocolError("malformed HTTP response") }
            return response
        } catch {
            throw Unreachable(endpoint: endpoint, reason: error)
        }
    }

    /// A GET whose 200 answer is a stream (server-sent events): the body's bytes go to
    /// `receive` as they arrive, until the server closes or `receive` returns false; then
    /// the response is returned without a body. Any other status is returned whole. Only
    /// connecting and the response head have the deadline; the stream may idle for ever.
    public func stream(_ path: String, accept: String, receive: ([UInt8]) -> Bool) throws(Unreachable) -> Response {
        let deadline = StreamClient.deadline(afterMilliseconds: timeoutMilliseconds)
        do throws(SystemError) {
            let socket = try send("GET", path, body: nil, accept: accept, deadline: deadline)
            defer { socket.close() }
            let head = try StreamClient.receive(socket, maxBytes: 64 << 10, deadline: deadline, isComplete: { Self.parseHead($0) != nil })
            guard let parsed = Self.parseHead(head) else { throw SystemError.protocolError("malformed HTTP response") }
            guard parsed.status == 200 else {
                if let response = Self.parse(head, complete: false) { return response }
                let raw = try StreamClient.receive(socket, maxBytes: 4 << 20, deadline: deadline, isComplete: { Self.parse(head + $0, complete: false) != nil })
                guard let response = Self.parse(head + raw, complete: true) else { throw SystemError.protocolError("malformed HTTP response") }
                return response
            }
            var decoder = ChunkedDecoder(isChunked: parsed.headers["transfer-encoding"]?.lowercased().contains("chunked") == true)
            var keepGoing = receive(decoder.feed(Array(head[parsed.bodyStart...])))
            while keepGoing && !decoder.finished && !decoder.malformed {
                // No deadline (half of UInt64 keeps StreamClient's arithmetic clear of overflow).
                let bytes = try StreamClient.receive(socket, maxBytes: 1 << 20, deadline: UInt64.max / 2, isComplete: { !$0.isEmpty })
                if bytes.isEmpty { break }
                keepGoing = receive(decoder.feed(bytes))
            }
            if decoder.malformed { throw SystemError.protocolError("malformed chunked body") }
            return Response(status: parsed.status, body: [])
        } catch {
            throw Unreachable(endpoint: endpoint, reason: error)
        }
    }

    /// Connects and sends the request; the socket is the caller's to read and close.
    private func send(_ method: String, _ path: String, body: JSONValue?, accept: String, deadline: UInt64) throws(SystemError) -> FileDescriptor {
        let socket: FileDescriptor
        switch endpoint {
        case .unix(let socketPath): socket = try StreamClient.connectUnix(path: socketPath)
        case .tcp(let host, let port, let isIPv6):
            guard let address = TCPSocket.Address(parsing: isIPv6 ? "[\(host)]:\(port)" : "\(host):\(port)") else {
                throw SystemError.invalidArgument("address \(host):\(port)")
            }
            socket = try StreamClient.connectTCP(address, deadline: deadline)
        }
        var head = "\(method) \(path) HTTP/1.1\r\nHost: localhost\r\nUser-Agent: \(userAgent)\r\nAccept: \(accept)\r\nConnection: close\r\n"
        if let token { head += "Authorization: Bearer \(token)\r\n" }
        var payload: [UInt8] = []
        if let body {
            payload = Array(body.rendered().utf8)
            head += "Content-Type: application/json\r\nContent-Length: \(payload.count)\r\n"
        }
        try StreamClient.sendAll(socket, Array((head + "\r\n").utf8) + payload, deadline: deadline)
        return socket
    }

    /// The status line and headers (names lower-cased), and where the body starts; nil
    /// until the blank line after the headers has arrived or when the status line is bad.
    static func parseHead(_ raw: [UInt8]) -> (status: Int, headers: [String: String], bodyStart: Int)? {
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
        return (status, headers, headerEnd + 4)
    }

    /// Parses a response. With `complete` false it returns nil until the whole body (by
    /// Content-Length or chunked encoding) has arrived; with `complete` true (the peer closed)
    /// a body without a length runs to the end.
    static func parse(_ raw: [UInt8], complete: Bool) -> Response? {
        guard let (status, headers, bodyStart) = parseHead(raw) else { return nil }
        let body = Array(raw[bodyStart...])
        if status == 204 || status == 304 || (100..<200).contains(status) { return Response(status: status, body: []) }
        if let lengthText = headers["content-length"] {
            // Digits only (Int(_:) takes a sign; a negative length would trap in prefix).
            guard lengthText.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }), let length = Int(lengthText), body.count >= length else { return nil }
            return Response(status: status, body: Array(body.prefix(length)))
        }
        if headers["transfer-encoding"]?.lowercased().contains("chunked") == true {
            return decodeChunked(body).map { Response(status: status, body: $0) }
        }
        return complete ? Response(status: status, body: body) : nil
    }

    /// The body of a chunked response, or nil while the last (zero) chunk is missing.
    static func decodeChunked(_ bytes: [UInt8]) -> [UInt8]? {
        var decoder = ChunkedDecoder(isChunked: true)
        let body = decoder.feed(bytes)
        return decoder.finished && !decoder.malformed ? body : nil
    }
}

/// Decodes a body as it arrives: chunked transfer encoding (chunks whole with their CRLF
/// are passed on; a partial one waits for more bytes), or bytes as they are.
struct ChunkedDecoder {
    let isChunked: Bool
    private var pending: [UInt8] = []
    /// The last (zero) chunk has arrived.
    private(set) var finished = false
    /// A chunk's size line or its end was not HTTP's: nothing more is decoded.
    private(set) var malformed = false
    /// Larger chunks are refused as malformed (the daemon's are a few KiB).
    static let maxChunkBytes = 16 << 20

    init(isChunked: Bool) { self.isChunked = isChunked }

    /// The body bytes `bytes` completes.
    mutating func feed(_ bytes: [UInt8]) -> [UInt8] {
        guard isChunked else { return bytes }
        pending.append(contentsOf: bytes)
        var result: [UInt8] = []
        var index = 0
        while !finished && !malformed {
            guard let lineEnd = (index..<max(index, pending.count - 1)).first(where: { pending[$0] == 13 && pending[$0 + 1] == 10 }) else { break }
            let sizeText = String(decoding: pending[index..<lineEnd], as: UTF8.self).split(separator: ";").first.map(String.init) ?? ""
            // The answer may come from a hostile or broken server: hex digits only (Int(_:radix:)
            // alone takes a sign) and a bounded size, so that no range below can be reversed or overflow.
            let digits = sizeText.trimmingSpaces()
            guard (1...8).contains(digits.utf8.count), digits.utf8.allSatisfy({ $0 < 128 && Character(Unicode.Scalar($0)).isHexDigit }),
                  let size = Int(digits, radix: 16), size <= Self.maxChunkBytes else {
                malformed = true
                break
            }
            if size == 0 { finished = true; index = lineEnd + 2; break }
            guard pending.count >= lineEnd + 2 + size + 2 else { break }
            guard pending[lineEnd + 2 + size] == 13, pending[lineEnd + 2 + size + 1] == 10 else {
                malformed = true
                break
            }
            result.append(contentsOf: pending[(lineEnd + 2)..<(lineEnd + 2 + size)])
            index = lineEnd + 2 + size + 2
        }
        if malformed { pending = [] } else { pending.removeFirst(index) }
        return result
    }
}

extension StringProtocol {
    public func trimmingSpaces() -> String {
        let scalars = unicodeScalars
        let isSpace: (Unicode.Scalar) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\r" || $0 == "\n" }
        guard let first = scalars.firstIndex(where: { !isSpace($0) }), let last = scalars.lastIndex(where: { !isSpace($0) }) else { return "" }
        return String(String.UnicodeScalarView(scalars[first...last]))
    }
}
