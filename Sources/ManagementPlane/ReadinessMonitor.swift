import PortService
import Synchronization
import VhostSystem

/// Readiness, apart from liveness: ready while every thread that must keep moving (the
/// control loop, each poll thread: `PortService.progressCounters`) has made progress within
/// `stallSeconds`. Each look compares the counters with the previous look; the counters
/// only grow while their thread works, so one that did not change between two looks
/// `stallSeconds` apart made no progress in all that time.
public final class ReadinessMonitor: Sendable {
    public static let defaultStallSeconds = 10

    public struct Check: Sendable, Equatable {
        public var name: String
        public var secondsWithoutProgress: Int
        public var stalled: Bool
    }

    public let stallSeconds: Int
    private let clock: @Sendable () -> UInt64
    /// Per counter: its value at the last look and when it last changed (nanoseconds).
    private let seen = Mutex<[String: (value: UInt64, changedAt: UInt64)]>([:])

    public init(stallSeconds: Int = ReadinessMonitor.defaultStallSeconds,
                clock: @escaping @Sendable () -> UInt64 = { MonotonicClock.nanoseconds() }) {
        self.stallSeconds = max(1, stallSeconds)
        self.clock = clock
    }

    /// One look at `counters`: how long each has not moved, and whether that is a stall.
    public func check(_ counters: [ProgressCounter]) -> [Check] {
        let now = clock()
        return seen.withLock { seen in
            counters.map { counter in
                var entry = seen[counter.name] ?? (counter.value, now)
                if entry.value != counter.value { entry = (counter.value, now) }
                seen[counter.name] = entry
                let seconds = Int((now &- entry.changedAt) / 1_000_000_000)
                return Check(name: counter.name, secondsWithoutProgress: seconds, stalled: seconds >= stallSeconds)
            }
        }
    }
}
