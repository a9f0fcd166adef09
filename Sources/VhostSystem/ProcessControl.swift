import Glibc

/// Leaving the process without running anything else: the old daemon after a live hand-over
/// (its sockets and files now belong to the new one: nothing may be closed cleanly, deleted
/// or unlinked), and the hand-over's crash hook for tests.
public enum ProcessControl {
    /// Exits now with `code` (stdio buffers flushed; no atexit handlers, no cleanup).
    public static func exitImmediately(_ code: Int32) -> Never {
        fflush(nil)
        _exit(code)
    }

    /// SIGKILL to ourselves: an unplanned death at a chosen point (tests of a failed hand-over).
    public static func killSelf() -> Never {
        kill(getpid(), SIGKILL)
        _exit(137)
    }
}

extension ProcessControl {
    /// The test hook of a failed hand-over: when VHOST_SWITCH_HANDOVER_CRASH_AT names `step`,
    /// the process kills itself there (tests kill the new daemon at each step in turn).
    public static func crashIfRequested(at step: String) {
        guard let requested = getenv("VHOST_SWITCH_HANDOVER_CRASH_AT"), String(cString: requested) == step else { return }
        killSelf()
    }
}
