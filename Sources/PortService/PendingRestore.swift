import Dataplane

/// A saved port that could not be re-created at start-up (an interface not up yet, a socket
/// directory not there yet): it stays in the saved state, the API shows it, and
/// `PortService` retries it with backoff until it is created or deleted.
public struct PendingRestore: Sendable {
    public var spec: PortSpec
    /// Why the latest attempt failed.
    public var lastError: String
    /// Attempts so far (the one at start-up included).
    public var attempts: Int
    /// When the next attempt is due (monotonic nanoseconds).
    public var nextAttemptAt: UInt64

    /// The first retry comes after 1 s, each later one waits twice as long, up to 60 s.
    public static let firstRetryNanoseconds: UInt64 = 1_000_000_000
    public static let maxRetryNanoseconds: UInt64 = 60_000_000_000

    /// Records a failed attempt at `now`.
    mutating func failed(_ error: PortService.PortError, now: UInt64) {
        attempts += 1
        lastError = error.message
        let delay = Self.firstRetryNanoseconds << UInt64(min(attempts - 1, 6))
        nextAttemptAt = now &+ min(delay, Self.maxRetryNanoseconds)
    }
}

extension PendingRestore {
    /// Its settings as a port view (no id, no socket or device yet).
    public var settingsView: PortView { PortView(spec: spec, id: -1, socketPath: nil, device: nil) }
}
