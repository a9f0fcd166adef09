/// How far each thread that must keep moving has got, for readiness: counters that only
/// grow while their thread works. Read without locks, so the answer comes even when a
/// thread is stuck holding one.
public struct ProgressCounter: Sendable, Equatable {
    /// "control-loop" or "pmdN".
    public var name: String
    public var value: UInt64

    public init(name: String, value: UInt64) {
        self.name = name
        self.value = value
    }
}

extension PortService {
    /// The control loop's rounds (it wakes at least once a second) and each poll thread's
    /// iterations plus sleeps (an adaptive thread that sleeps still ends a sleep at least
    /// once a second and counts it).
    public var progressCounters: [ProgressCounter] {
        var counters = [ProgressCounter(name: "control-loop", value: controlLoop.rounds)]
        for (index, thread) in fabric.pollThreadStatistics.enumerated() {
            counters.append(ProgressCounter(name: "pmd\(index)", value: thread.iterations &+ thread.sleeps))
        }
        return counters
    }
}
