import Foundation

/// Records the daemon's event stream (a `SwitchEventStream` on GET /v1/events) for the length
/// of a test. The API keeps only the last 1024 events for replay; a long run makes far more,
/// so a test that wants to see every event of some type must listen while it happens.
public final class SwitchEventRecorder: @unchecked Sendable {
    public struct Event: Sendable, CustomStringConvertible {
        public var id: Int
        public var type: String
        public var port: String?
        /// `data.message` (error events carry one).
        public var message: String?
        public var description: String { "#\(id) \(type) \(port ?? "-") \(message ?? "")" }
    }

    /// The events parsed so far, filled on the stream's reading thread.
    private final class Log: @unchecked Sendable {
        let lock = NSLock()
        var events: [Event] = []
    }

    private let log = Log()
    private let stream: SwitchEventStream

    /// Starts listening; `query` is the query string of /v1/events ("type=error").
    public init(_ daemon: SwitchDaemonProcess, query: String = "") throws {
        let log = self.log
        // One event per "data:" line.
        stream = try SwitchEventStream(daemon.api, path: "/v1/events" + (query.isEmpty ? "" : "?" + query),
                                       headers: ["Accept: text/event-stream"], keepsText: false) { line in
            guard line.hasPrefix("data: "), let event = Self.parse(line.dropFirst(6)) else { return }
            log.lock.withLock { log.events.append(event) }
        }
    }

    deinit { stop() }

    /// Stops listening (the events recorded so far stay).
    public func stop() { stream.stop() }

    public var events: [Event] { log.lock.withLock { log.events } }

    /// Whether the stream is still open (the daemon cuts a client that falls too far behind).
    public var isListening: Bool { stream.isListening }

    private static func parse(_ json: Substring) -> Event? {
        guard let object = try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any],
              let type = object["type"] as? String else { return nil }
        return Event(id: object["id"] as? Int ?? 0, type: type, port: object["port"] as? String,
                     message: (object["data"] as? [String: Any])?["message"] as? String)
    }
}
