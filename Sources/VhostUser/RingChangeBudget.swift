/// A token bucket for a session's ring-changing requests: `perSecond` tokens, refilled at
/// that rate, so a set-up's burst of requests passes and a sustained flood does not.
struct RingChangeBudget {
    let perSecond: Int
    private var tokens: Double
    private var lastRefill: UInt64?

    init(perSecond: Int) {
        self.perSecond = perSecond
        tokens = Double(perSecond)
    }

    /// Takes one token at monotonic time `now` (ns); false when none is left.
    mutating func take(now: UInt64) -> Bool {
        if let lastRefill, now > lastRefill {
            tokens = min(Double(perSecond), tokens + Double(now - lastRefill) * Double(perSecond) / 1e9)
        }
        lastRefill = now
        guard tokens >= 1 else { return false }
        tokens -= 1
        return true
    }
}
