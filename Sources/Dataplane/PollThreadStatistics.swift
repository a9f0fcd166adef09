import Synchronization
import VhostSystem

/// Per poll thread load figures, like OVS's pmd-stats-show. Written only by its thread
/// (relaxed load + store, no read-modify-write), read by the management plane.
public final class PollThreadStatistics: Sendable {
    let iterations = Atomic<UInt64>(0)
    let busyCycles = Atomic<UInt64>(0)
    let idleCycles = Atomic<UInt64>(0)
    let packets = Atomic<UInt64>(0)
    let sleeps = Atomic<UInt64>(0)
    /// The longest loop iteration (every queue served once), in TSC cycles: how long one
    /// guest's rings could hold the other ports of this thread. Only iterations of windows in
    /// which the thread kept its CPU count (see `IterationTimer`).
    let maxIterationCycles = Atomic<UInt64>(0)

    public struct Snapshot: Sendable, Equatable {
        public var iterations: UInt64
        public var busyCycles: UInt64
        public var idleCycles: UInt64
        public var packets: UInt64
        public var sleeps: UInt64
        public var maxIterationCycles: UInt64
        /// `maxIterationCycles` in nanoseconds.
        public var maxIterationNanoseconds: UInt64 { MonotonicClock.nanoseconds(fromCycles: maxIterationCycles) }
        /// Busy cycles per forwarded packet: the cost of the hot path.
        public var busyCyclesPerPacket: Double { packets == 0 ? 0 : Double(busyCycles) / Double(packets) }
        /// Share of cycles spent on iterations that moved packets.
        public var busyRatio: Double {
            let total = busyCycles + idleCycles
            return total == 0 ? 0 : Double(busyCycles) / Double(total)
        }
    }

    public func snapshot() -> Snapshot {
        Snapshot(iterations: iterations.load(ordering: .relaxed), busyCycles: busyCycles.load(ordering: .relaxed),
                 idleCycles: idleCycles.load(ordering: .relaxed), packets: packets.load(ordering: .relaxed),
                 sleeps: sleeps.load(ordering: .relaxed), maxIterationCycles: maxIterationCycles.load(ordering: .relaxed))
    }

    @inline(__always)
    static func bump(_ counter: borrowing Atomic<UInt64>, by amount: UInt64) {
        counter.store(counter.load(ordering: .relaxed) &+ amount, ordering: .relaxed)
    }
}
