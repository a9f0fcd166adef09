import Foundation

/// A command line run under nice(1). A test's load generators (testpmd, the hostile
/// front-end) run at the lowest priority on the CPU they share with what the test times (the
/// daemon's control and API threads, a REST probe), so the timed threads get that CPU as soon
/// as they wake instead of waiting behind a busy poller's time slice.
public enum LowPriorityCommand {
    public static let nicePath = "/usr/bin/nice"
    /// The lowest priority a nice level gives (SCHED_OTHER weight 15 against 1024 at 0).
    public static let lowestNiceness: Int32 = 19

    /// `command` (executable first) prefixed with `nice -n niceness`. nice(1) execs the
    /// command, so the process keeps its pid and its name.
    public static func wrap(_ command: [String], niceness: Int32 = lowestNiceness) -> [String] {
        precondition(FileManager.default.isExecutableFile(atPath: nicePath), "\(nicePath) (coreutils) is missing")
        return [nicePath, "-n", "\(niceness)"] + command
    }
}
