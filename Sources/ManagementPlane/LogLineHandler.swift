import Logging
import Synchronization
import VhostSystem

/// The daemon's log handler: one line per message on standard error, as swift-log's text
/// (`StreamLogHandler`) or as one JSON object per line (`--log-format json`: time, level,
/// label, message, metadata) for log collectors. The level is the shared `RuntimeLogLevel`,
/// so a change through the API applies to every logger at once.
public struct LogLineHandler: LogHandler {
    public enum Format: String, CaseIterable, Sendable {
        case text, json
    }

    private let label: String
    private let format: Format
    private let runtimeLevel: RuntimeLogLevel
    private var text: StreamLogHandler
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?

    public init(label: String, format: Format, level: RuntimeLogLevel, metadataProvider: Logger.MetadataProvider? = nil) {
        self.label = label
        self.format = format
        runtimeLevel = level
        text = StreamLogHandler.standardError(label: label, metadataProvider: metadataProvider)
        self.metadataProvider = metadataProvider
    }

    /// Reads and sets the shared level: a logger that sets its level sets the daemon's.
    public var logLevel: Logger.Level {
        get { runtimeLevel.level }
        set { runtimeLevel.level = newValue }
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        switch format {
        case .text:
            var handler = text
            handler.metadata = metadata
            handler.metadataProvider = metadataProvider
            handler.log(event: event)
        case .json:
            var merged = metadata
            merged.merge(metadataProvider?.get() ?? [:]) { _, new in new }
            merged.merge(event.metadata ?? [:]) { _, new in new }
            let line = Self.jsonLine(time: MonotonicClock.wallMilliseconds(), level: event.level, label: label,
                                     message: event.message.description, metadata: merged)
            StandardErrorLines.shared.write(line)
        }
    }

    /// One JSON object and a newline (keys sorted: label, level, message, metadata, time).
    static func jsonLine(time: UInt64, level: Logger.Level, label: String, message: String, metadata: Logger.Metadata) -> String {
        let object: JSON = [
            "time": .string(Timestamp.rfc3339(milliseconds: time)),
            "level": .string(level.rawValue),
            "label": .string(label),
            "message": .string(message),
            "metadata": .object(metadata.mapValues(json)),
        ]
        return object.rendered() + "\n"
    }

    private static func json(_ value: Logger.Metadata.Value) -> JSON {
        switch value {
        case .string(let text): return .string(text)
        case .stringConvertible(let convertible): return .string(convertible.description)
        case .array(let items): return .array(items.map(json))
        case .dictionary(let members): return .object(members.mapValues(json))
        }
    }
}

/// Standard error for whole lines: one writer at a time, so lines from several threads never
/// interleave.
final class StandardErrorLines: Sendable {
    static let shared = StandardErrorLines()
    private let output: Mutex<FileDescriptor?>

    private init() {
        output = Mutex(try? FileDescriptor.duplicate(2))
    }

    func write(_ line: String) {
        let bytes = Array(line.utf8)
        output.withLock { output in
            guard let output else { return }
            var offset = 0
            while offset < bytes.count {
                // Unsafe: write(2) reads the rest of the line's own buffer. A failed write (a
                // closed stderr) drops the line: logging never stops the daemon.
                let written = bytes.withUnsafeBytes { buffer in
                    (try? output.write(UnsafeRawBufferPointer(rebasing: buffer[offset...]))) ?? -1
                }
                if written <= 0 { return }
                offset += written
            }
        }
    }
}
