/// Which poll thread serves each receive queue, from the busy cycles each queue cost in the
/// last interval (as OVS's pmd-rxq-assign=cycles): pinned queues (`rxq_affinity`) stay on
/// their thread and count towards its load; the others go, busiest first, to the thread
/// with the least load so far. A control-path computation on a handful of numbers.
public enum RxqBalancer {
    /// One receive queue: its measured load and the thread it is pinned to, if any.
    public struct Queue: Equatable, Sendable {
        public var load: UInt64
        public var pinnedThread: Int?
        public init(load: UInt64, pinnedThread: Int? = nil) {
            self.load = load
            self.pinnedThread = pinnedThread
        }
    }

    /// A thread for each queue, in `queues` order. Ties go to the thread with fewer queues, then
    /// the lower index; among queues of equal load the one listed first goes first, so the
    /// same loads give the same answer.
    public static func assign(_ queues: [Queue], threads: Int) -> [Int] {
        let threadCount = max(1, threads)
        var loads = [UInt64](repeating: 0, count: threadCount)
        var assignment = [Int](repeating: 0, count: queues.count)
        var unpinned: [Int] = []
        for (index, queue) in queues.enumerated() {
            if let pinned = queue.pinnedThread, pinned >= 0, pinned < threadCount {
                assignment[index] = pinned
                loads[pinned] &+= queue.load
            } else {
                unpinned.append(index)
            }
        }
        unpinned.sort { queues[$0].load != queues[$1].load ? queues[$0].load > queues[$1].load : $0 < $1 }
        // Among threads of equal load, the one with fewer queues: idle queues spread too.
        var counts = [Int](repeating: 0, count: threadCount)
        for index in unpinned {
            let least = loads.indices.min { a, b in
                loads[a] != loads[b] ? loads[a] < loads[b] : counts[a] != counts[b] ? counts[a] < counts[b] : a < b
            } ?? 0
            assignment[index] = least
            loads[least] &+= queues[index].load
            counts[least] += 1
        }
        return assignment
    }

    /// The load of the busiest thread under `assignment`.
    public static func busiestLoad(_ queues: [Queue], _ assignment: [Int], threads: Int) -> UInt64 {
        var loads = [UInt64](repeating: 0, count: max(1, threads))
        for (queue, thread) in zip(queues, assignment) where thread >= 0 && thread < loads.count { loads[thread] &+= queue.load }
        return loads.max() ?? 0
    }

    /// The assignment to move to, or nil to keep `current`: only when the busiest thread's load
    /// would drop by at least `improvement` (a fraction: 0.25 is a quarter), so measurement
    /// noise never moves queues back and forth.
    public static func rebalanced(_ queues: [Queue], current: [Int], threads: Int, improvement: Double) -> [Int]? {
        guard threads > 1, queues.count == current.count else { return nil }
        let proposed = assign(queues, threads: threads)
        guard proposed != current else { return nil }
        let before = Double(busiestLoad(queues, current, threads: threads))
        let after = Double(busiestLoad(queues, proposed, threads: threads))
        guard before > 0, after <= before * (1 - improvement) else { return nil }
        return proposed
    }
}
