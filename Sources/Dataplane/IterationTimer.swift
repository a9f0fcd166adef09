import VhostSystem

/// Times a poll thread's loop iterations and keeps the longest one that was the thread's own
/// work. Time the thread spent off its CPU (preempted, blocked, or the hypervisor running
/// another vCPU: steal time) is no guest's doing, so the longest iteration of a window of
/// `windowIterations` counts only when the window lost less than `offCPUToleranceNanoseconds`.
/// Checked once per window (getrusage and the thread's CPU clock: two syscalls), not per
/// iteration.
struct IterationTimer {
    static let windowIterations = 1024
    static let offCPUToleranceNanoseconds: UInt64 = 20_000

    /// The longest counted iteration so far, in TSC cycles.
    private(set) var longestCycles: UInt64 = 0
    private var lastCycles = MonotonicClock.cycles()
    private var windowLongest: UInt64 = 0
    private var windowCycles: UInt64 = 0
    private var windowIterations = 0
    private var preemptions = SystemThread.preemptionCount()
    private var cpuNanoseconds = SystemThread.cpuTimeNanoseconds()

    /// When the current iteration started (TSC): the poll loop's clock for rate limits.
    @inline(__always) var iterationStartCycles: UInt64 { lastCycles }

    /// Ends an iteration; returns its length in cycles and whether `longestCycles` grew.
    @inline(__always)
    mutating func endIteration() -> (spent: UInt64, longestGrew: Bool) {
        let now = MonotonicClock.cycles()
        let spent = now &- lastCycles
        lastCycles = now
        if spent > windowLongest { windowLongest = spent }
        windowCycles &+= spent
        windowIterations &+= 1
        guard windowIterations == Self.windowIterations else { return (spent, false) }
        return (spent, endWindow())
    }

    /// After a sleep: the time asleep is neither an iteration nor part of the window.
    @inline(__always)
    mutating func resumeAfterSleep() { lastCycles = MonotonicClock.cycles() }

    private mutating func endWindow() -> Bool {
        let nowPreemptions = SystemThread.preemptionCount()
        let nowCPU = SystemThread.cpuTimeNanoseconds()
        let onCPU = nowCPU &- cpuNanoseconds
        let elapsed = MonotonicClock.nanoseconds(fromCycles: windowCycles)
        let offCPU = elapsed > onCPU ? elapsed - onCPU : 0
        let counted = nowPreemptions == preemptions && offCPU < Self.offCPUToleranceNanoseconds
        let grew = counted && windowLongest > longestCycles
        if grew { longestCycles = windowLongest }
        preemptions = nowPreemptions
        cpuNanoseconds = nowCPU
        windowLongest = 0
        windowCycles = 0
        windowIterations = 0
        return grew
    }
}
