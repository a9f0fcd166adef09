import Foundation

/// The one client tests use for the daemon's REST API, on its unix socket or on TCP, with
/// /usr/bin/curl (so what is tested is what an operator's curl sees, chunked bodies
/// included): any method, a text or raw body with any content type, extra headers, an
/// Authorization header; the reply's status, headers, body and JSON. `eventStream` reads
/// GET /v1/events as server-sent events.
public struct SwitchAPIClient: Sendable {
    public static let curl = "/usr/bin/curl"

    public enum Endpoint: Sendable, CustomStringConvertible {
        case unixSocket(String)
        case tcp(host: String, port: Int)

        public var description: String {
            switch self {
            case .unixSocket(let path): path
            case .tcp(let host, let port): "\(host):\(port)"
            }
        }
    }

    public let endpoint: Endpoint

    public init(socketPath: String) { endpoint = .unixSocket(socketPath) }

    public init(tcpPort: Int, host: String = "127.0.0.1") { endpoint = .tcp(host: host, port: tcpPort) }

    /// The API on `daemon`'s unix socket.
    public init(_ daemon: SwitchDaemonProcess) { self.init(socketPath: daemon.apiSocketPath) }

    public struct Reply: Sendable, CustomStringConvertible {
        public var status: Int
        /// Header names lowercased.
        public var headers: [String: String]
        public var body: String

        /// The body parsed as JSON (nil when empty or not JSON).
        public var json: Any? { try? JSONSerialization.jsonObject(with: Data(body.utf8), options: [.fragmentsAllowed]) }
        public var object: [String: Any] { json as? [String: Any] ?? [:] }
        /// `error.code` and `error.message` of an error reply.
        public var errorCode: String? { (object["error"] as? [String: Any])?["code"] as? String }
        public var errorMessage: String { (object["error"] as? [String: Any])?["message"] as? String ?? "" }
        public var description: String { "HTTP \(status): \(body.prefix(2000))" }
    }

    public struct APIError: Error, CustomStringConvertible {
        public var description: String
        init(_ description: String) { self.description = description }
    }

    /// curl's arguments that reach the endpoint and the URL of `path`.
    func target(_ path: String) -> (arguments: [String], url: String) {
        switch endpoint {
        case .unixSocket(let socket): (["--unix-socket", socket], "http://localhost" + path)
        case .tcp(let host, let port): ([], "http://\(host):\(port)\(path)")
        }
    }

    /// One request. `body` (text) or `bodyData` (raw bytes) is sent as-is, with `contentType`
    /// when there is a body (nil: curl's own). `headers` go to curl's -H as written ("Name:"
    /// with nothing after removes a header curl would send); without an Accept header among
    /// them, "Accept: application/json" is sent.
    @discardableResult
    public func request(_ method: String, _ path: String, body: String? = nil, bodyData: Data? = nil,
                        contentType: String? = "application/json", headers: [String] = [],
                        authorization: String? = nil, timeout: Int = 20) throws -> Reply {
        let scratch = NSTemporaryDirectory() + "vsd-curl-" + String(UInt64.random(in: 0...UInt64.max), radix: 36)
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let bodyFile = scratch + "/body", headerFile = scratch + "/headers"
        let (endpointArguments, url) = target(path)
        var arguments = ["-s", "-S", "-g", "--max-time", "\(timeout)", "-X", method, "-o", bodyFile, "-D", headerFile,
                         "-w", "%{http_code}", "-H", "Expect:"] + endpointArguments
        if !headers.contains(where: { $0.lowercased().hasPrefix("accept:") }) { arguments += ["-H", "Accept: application/json"] }
        if let authorization { arguments += ["-H", "Authorization: \(authorization)"] }
        if let data = bodyData ?? body.map({ Data($0.utf8) }) {
            if let contentType { arguments += ["-H", "Content-Type: \(contentType)"] }
            let requestFile = scratch + "/request"
            try data.write(to: URL(fileURLWithPath: requestFile))
            arguments += ["--data-binary", "@" + requestFile]
        }
        for header in headers { arguments += ["-H", header] }
        arguments.append(url)

        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.curl)
        process.arguments = arguments
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let output = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let errors = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0, let status = Int(output) else {
            throw APIError("curl \(method) \(path) on \(endpoint) failed (\(process.terminationStatus)): \(errors)")
        }
        var headerMap: [String: String] = [:]
        let headerText = (try? String(contentsOfFile: headerFile, encoding: .utf8)) ?? ""
        for line in headerText.split(whereSeparator: { $0 == "\r\n" || $0 == "\n" }) {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headerMap[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        let responseBody = (try? String(contentsOfFile: bodyFile, encoding: .utf8)) ?? ""
        return Reply(status: status, headers: headerMap, body: responseBody)
    }

    /// `object` serialized as the JSON body.
    @discardableResult
    public func json(_ method: String, _ path: String, _ object: Any) throws -> Reply {
        try request(method, path, bodyData: try JSONSerialization.data(withJSONObject: object))
    }

    /// Like `request`, but throws unless the status is one of `expecting`.
    @discardableResult
    public func expect(_ method: String, _ path: String, body: String? = nil, status expecting: Set<Int> = [200, 201, 204]) throws -> Reply {
        let reply = try request(method, path, body: body)
        guard expecting.contains(reply.status) else { throw APIError("\(method) \(path): \(reply)") }
        return reply
    }

    /// The feature names of a FeatureSet member ("offered", "negotiated", "supported") of
    /// GET /v1/ports/{name}/features; nil when it is null (nothing negotiated yet).
    public func featureNames(port: String, set: String) throws -> [String]? {
        let reply = try expect("GET", "/v1/ports/\(port)/features", status: [200])
        return (reply.object[set] as? [String: Any])?["names"] as? [String]
    }

    /// GET `path` (an event stream: /v1/events with a query) read in the background.
    public func eventStream(_ path: String = "/v1/events", headers: [String] = []) throws -> SwitchEventStream {
        try SwitchEventStream(self, path: path, headers: headers)
    }
}
