/// A token bucket for a session's ring-changing requests: `burst` tokens at first, refilled
/// at `perSecond` up to `burst`, so a set-up's burst of requests passes and a sustained
/// flood does not.
struct RingChangeBudget {
    let perSecond: Int
    let burst: Int
    private var tokens: Double
    private var lastRefill: UInt64?

    init(perSecond: Int, burst: Int? = nil) {
        self.perSecond = perSecond
        self.burst = max(perSecond, burst ?? perSecond)
        tokens = Double(self.burst)
    }

    /// Takes one token at monotonic time `now` (ns); false when none is left.
    mutating func take(now: UInt64) -> Bool {
        if let lastRefill, now > lastRefill {
            tokens = min(Double(burst), tokens + Double(now - lastRefill) * Double(perSecond) / 1e9)
        }
        lastRefill = now
        guard tokens >= 1 else { return false }
        tokens -= 1
        return true
    }
}
