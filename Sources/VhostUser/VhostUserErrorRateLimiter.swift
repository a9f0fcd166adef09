import VhostSystem

/// Lets a burst of error reports through per window and counts the rest, so a hostile
/// front-end cannot flood the log or the event stream.
struct VhostUserErrorRateLimiter {
    let burst: Int
    let windowNanoseconds: UInt64
    private var windowStart: UInt64 = 0
    private var countInWindow = 0
    private(set) var suppressed = 0

    init(burst: Int = 10, windowNanoseconds: UInt64 = 1_000_000_000) {
        self.burst = burst
        self.windowNanoseconds = windowNanoseconds
    }

    /// Whether to report now; `suppressedBefore` is how many were dropped since the last report.
    mutating func allow(now: UInt64 = MonotonicClock.nanoseconds()) -> (allowed: Bool, suppressedBefore: Int) {
        if now &- windowStart >= windowNanoseconds {
            windowStart = now
            countInWindow = 0
        }
        guard countInWindow < burst else {
            suppressed += 1
            return (false, 0)
        }
        countInWindow += 1
        let dropped = suppressed
        suppressed = 0
        return (true, dropped)
    }
}
