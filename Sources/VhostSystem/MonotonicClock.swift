import CVhostShims
import Glibc

/// Monotonic time for timeouts, backoff and ageing; the TSC for cycle accounting.
public enum MonotonicClock {
    @inlinable
    public static func nanoseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
    }

    @inlinable
    public static func cycles() -> UInt64 { vhost_shims_rdtsc() }

    /// TSC cycles per nanosecond, measured once (over 20 ms) on first use.
    public static let cyclesPerNanosecond: Double = {
        let startNanoseconds = nanoseconds()
        let startCycles = cycles()
        var pause = timespec(tv_sec: 0, tv_nsec: 20_000_000)
        var left = timespec()
        while nanosleep(&pause, &left) != 0 { pause = left }
        let elapsed = nanoseconds() - startNanoseconds
        return elapsed == 0 ? 1 : Double(cycles() &- startCycles) / Double(elapsed)
    }()

    public static func nanoseconds(fromCycles cycleCount: UInt64) -> UInt64 {
        UInt64(Double(cycleCount) / max(cyclesPerNanosecond, 0.001))
    }

    /// Wall-clock time in milliseconds since the epoch, for event time stamps.
    public static func wallMilliseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return UInt64(ts.tv_sec) &* 1000 &+ UInt64(ts.tv_nsec / 1_000_000)
    }
}
