import Logging
import Synchronization

/// The daemon's log level, shared by every logger's handler (`LogLineHandler` reads it for
/// each message) so that PUT /v1/log-level changes what every part of the daemon logs at once.
public final class RuntimeLogLevel: Sendable {
    private static let levels = Logger.Level.allCases
    private let index: Atomic<Int>

    public init(_ level: Logger.Level) {
        index = Atomic(Self.levels.firstIndex(of: level) ?? 0)
    }

    public var level: Logger.Level {
        get { Self.levels[index.load(ordering: .relaxed)] }
        set { index.store(Self.levels.firstIndex(of: newValue) ?? 0, ordering: .relaxed) }
    }

    /// The names --log-level and the API accept, lowest first.
    public static var names: [String] { levels.map(\.rawValue) }
}
