import CVhostShims
import Virtio

/// A counter family counted per port or per segment by the forwarder (`PortSwitchCounter`,
/// `SegmentDropCounter`): its cases index the counters of one row, and each case's
/// `descriptor` is its row in the family's table.
public protocol IndexedCounter: RawRepresentable<Int>, CaseIterable, Hashable, Sendable {
    var descriptor: CounterDescriptor<IndexedCounterValues<Self>> { get }
    /// `allCases.map(\.descriptor)`, built once.
    static var rows: [CounterDescriptor<IndexedCounterValues<Self>>] { get }
}

/// One poll thread's counters of a family, a row per port id or segment: the thread writes
/// only its own block (relaxed load + store, no shared cache lines between threads), and
/// readers add the blocks up (`IndexedCounterValues(summing:of:)`).
final class PerThreadCounters<Counter: IndexedCounter>: @unchecked Sendable {  // every access to `base` is a relaxed atomic
    /// Counters per row, rounded up to whole cache lines.
    let stride = (Counter.allCases.count + 7) & ~7
    let rowCount: Int
    // Unsafe: rowCount * stride counters, allocated once (cache-line aligned), zeroed, freed in deinit.
    let base: UnsafeMutablePointer<UInt64>

    init(rows: Int) {
        rowCount = rows
        let raw = UnsafeMutableRawPointer.allocate(byteCount: rows * stride * 8, alignment: 64)
        raw.initializeMemory(as: UInt8.self, repeating: 0, count: rows * stride * 8)
        base = raw.bindMemory(to: UInt64.self, capacity: rows * stride)
    }

    deinit { UnsafeMutableRawPointer(base).deallocate() }

    /// Poll thread only: adds to its own block.
    @inline(__always)
    func add(_ counter: Counter, of row: Int, _ amount: UInt64) {
        // Unsafe: row < rowCount (port ids are allocated below it; segments are masked to
        // 12 bits below 4096 rows), counter < stride.
        let slot = base + (row &* stride &+ counter.rawValue)
        vhost_shims_store_relaxed_u64(slot, vhost_shims_load_relaxed_u64(slot) &+ amount)
    }

    func value(_ counter: Counter, of row: Int) -> UInt64 {
        vhost_shims_load_relaxed_u64(base + (row * stride + counter.rawValue))
    }

    /// Whether every counter of `row` is 0: a plain scan of the row's words, so a caller can
    /// skip the many empty rows (4,096 segments) before building any values.
    func rowIsZero(_ row: Int) -> Bool {
        // Unsafe: row < rowCount, so the row's `stride` words lie inside the block.
        let start = base + row &* stride
        var word = 0
        while word < stride {
            if vhost_shims_load_relaxed_u64(start + word) != 0 { return false }
            word &+= 1
        }
        return true
    }

    /// Control side, after a grace period (no thread touches the row any more).
    func reset(row: Int) {
        for counter in Counter.allCases { vhost_shims_store_relaxed_u64(base + (row * stride + counter.rawValue), 0) }
    }
}

/// One row of a family summed over poll threads, indexed by counter.
public struct IndexedCounterValues<Counter: IndexedCounter>: Sendable, Equatable, CounterSnapshot {
    private var values = [UInt64](repeating: 0, count: Counter.allCases.count)

    public static var counters: [CounterDescriptor<Self>] { Counter.rows }

    public init() {}

    init(summing blocks: [PerThreadCounters<Counter>], of row: Int) {
        for counter in Counter.allCases {
            self[counter] = blocks.reduce(0) { $0 &+ $1.value(counter, of: row) }
        }
    }

    public subscript(counter: Counter) -> UInt64 {
        get { values[counter.rawValue] }
        set { values[counter.rawValue] = newValue }
    }

    var isZero: Bool { values.allSatisfy { $0 == 0 } }
}
