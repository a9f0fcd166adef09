import Glibc

/// Blocks SIGINT, SIGTERM and SIGHUP in every thread (create it before any thread starts)
/// and ignores SIGPIPE, so that a signal is taken only by `wait()` on the main thread.
public final class SignalWaiter: Sendable {
    /// SIGHUP: the daemon's "reload" signal.
    public static let hangup = SIGHUP

    public init() {
        signal(SIGPIPE, SIG_IGN)
        var set = Self.handled()
        pthread_sigmask(SIG_BLOCK, &set, nil)
    }

    private static func handled() -> sigset_t {
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGINT)
        sigaddset(&set, SIGTERM)
        sigaddset(&set, SIGHUP)
        return set
    }

    /// Waits for one of the handled signals and returns its number.
    public func wait() -> Int32 {
        var set = Self.handled()
        var received: Int32 = 0
        while sigwait(&set, &received) != 0 {}
        return received
    }
}
