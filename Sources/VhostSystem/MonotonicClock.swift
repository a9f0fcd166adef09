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

    /// Wall-clock time in milliseconds since the epoch, for event time stamps.
    public static func wallMilliseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return UInt64(ts.tv_sec) &* 1000 &+ UInt64(ts.tv_nsec / 1_000_000)
    }
}
