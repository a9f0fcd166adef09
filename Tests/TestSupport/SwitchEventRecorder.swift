import Foundation

/// Records the daemon's event stream (GET /v1/events as server-sent events, through curl) for
/// the length of a test. The API keeps only the last 1024 events for replay; a long run makes
/// far more, so a test that wants to see every event of some type must listen while it happens.
public final class SwitchEventRecorder: @unchecked Sendable {
    public struct Event: Sendable, CustomStringConvertible {
        public var id: Int
        public var type: String
        public var port: String?
        /// `data.message` (error events carry one).
        public var message: String?
        public var description: String { "#\(id) \(type) \(port ?? "-") \(message ?? "")" }
    }

    private let process = Process()
    private let lock = NSLock()
    private var pending = Data()
    private var recorded: [Event] = []

    /// Starts listening; `query` is the query string of /v1/events ("type=error").
    public init(_ daemon: SwitchDaemonProcess, query: String = "") throws {
        process.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
        process.arguments = ["-s", "-N", "--unix-socket", daemon.runDirectory + "/api.sock", "-H", "Accept: text/event-stream",
                             "http://localhost/v1/events" + (query.isEmpty ? "" : "?" + query)]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        pipe.fileHandleForReading.readabilityHandler = { [weak self] handle in
            let chunk = handle.availableData
            if chunk.isEmpty { handle.readabilityHandler = nil } else { self?.append(chunk) }
        }
        try process.run()
    }

    deinit { stop() }

    /// Stops listening (the events recorded so far stay).
    public func stop() {
        if process.isRunning { process.terminate(); process.waitUntilExit() }
    }

    public var events: [Event] { lock.withLock { recorded } }

    /// Whether the stream is still open (the daemon cuts a client that falls too far behind).
    public var isListening: Bool { process.isRunning }

    private func append(_ chunk: Data) {
        lock.withLock {
            pending.append(chunk)
            // One event per "data:" line; a line is complete once its newline arrived.
            while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                let line = String(decoding: pending[pending.startIndex..<newline], as: UTF8.self)
                pending.removeSubrange(pending.startIndex...newline)
                if line.hasPrefix("data: "), let event = Self.parse(line.dropFirst(6)) { recorded.append(event) }
            }
        }
    }

    private static func parse(_ json: Substring) -> Event? {
        guard let object = try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any],
              let type = object["type"] as? String else { return nil }
        return Event(id: object["id"] as? Int ?? 0, type: type, port: object["port"] as? String,
                     message: (object["data"] as? [String: Any])?["message"] as? String)
    }
}
