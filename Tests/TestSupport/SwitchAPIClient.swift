import Foundation

/// The daemon's REST API over its unix socket, with /usr/bin/curl: any method, a JSON body,
/// the HTTP status and the decoded JSON reply.
public struct SwitchAPIClient: Sendable {
    public let socketPath: String

    public init(socketPath: String) { self.socketPath = socketPath }

    public init(_ daemon: SwitchDaemonProcess) { socketPath = daemon.runDirectory + "/api.sock" }

    public struct Reply: @unchecked Sendable, CustomStringConvertible {
        public var status: Int
        public var body: String
        /// The body parsed as JSON (nil when empty or not JSON).
        public var json: Any?
        public var object: [String: Any] { json as? [String: Any] ?? [:] }
        public var description: String { "HTTP \(status): \(body.prefix(2000))" }
    }

    @discardableResult
    public func request(_ method: String, _ path: String, body: String? = nil) throws -> Reply {
        var command = ["/usr/bin/curl", "-s", "-S", "--max-time", "10", "-o", "-", "-w", "\n%{http_code}",
                       "--unix-socket", socketPath, "-X", method, "-H", "Accept: application/json"]
        if let body { command += ["-H", "Content-Type: application/json", "-d", body] }
        command.append("http://localhost" + path)
        let result = try QemuGuest.run(command)
        guard result.status == 0 else { throw QemuGuest.QemuError("curl \(method) \(path) failed (\(result.status)): \(result.output)") }
        var lines = result.output.split(separator: "\n", omittingEmptySubsequences: false)
        let status = Int(lines.popLast() ?? "") ?? 0
        let text = lines.joined(separator: "\n")
        let json = text.isEmpty ? nil : try? JSONSerialization.jsonObject(with: Data(text.utf8))
        return Reply(status: status, body: text, json: json)
    }

    /// Like `request`, but throws unless the status is one of `expecting`.
    @discardableResult
    public func expect(_ method: String, _ path: String, body: String? = nil, status expecting: Set<Int> = [200, 201, 204]) throws -> Reply {
        let reply = try request(method, path, body: body)
        guard expecting.contains(reply.status) else { throw QemuGuest.QemuError("\(method) \(path): \(reply)") }
        return reply
    }

    /// Waits until GET /v1/health answers 200.
    public func waitUntilUp(timeout: TimeInterval = 15) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if FileManager.default.fileExists(atPath: socketPath), let reply = try? request("GET", "/v1/health"), reply.status == 200 { return }
            Thread.sleep(forTimeInterval: 0.05)
        }
        throw QemuGuest.QemuError("the API at \(socketPath) did not answer within \(timeout) s")
    }

    /// The feature names of a FeatureSet member ("offered", "negotiated", "supported") of
    /// GET /v1/ports/{name}/features; nil when it is null (nothing negotiated yet).
    public func featureNames(port: String, set: String) throws -> [String]? {
        let reply = try expect("GET", "/v1/ports/\(port)/features", status: [200])
        return (reply.object[set] as? [String: Any])?["names"] as? [String]
    }
}
