import CVhostShims

/// A counter family's live counts, kept in one block shaped like its snapshot: each counter
/// is declared once, as a field of the snapshot with its table row, and `snapshot()` reads
/// the block row by row of that table. Writers add to the fields by address, written out
/// field by field in their `record` (the hot path takes no key path):
/// `cells.add(&cells.block.pointee.packets, n)`. Each field has one writer, which adds with a
/// relaxed load and store (no read-modify-write); readers load relaxed, from any thread.
/// Held inline by its statistics class (noncopyable: one owner frees the block).
public struct CounterCells<Snapshot: CounterSnapshot>: ~Copyable {
    // Unsafe: one snapshot-shaped block of UInt64 fields, allocated and zeroed once, freed in deinit.
    public let block: UnsafeMutablePointer<Snapshot>

    public init() {
        block = .allocate(capacity: 1)
        block.initialize(to: Snapshot())
    }

    deinit {
        block.deallocate()
    }

    /// Adds `amount` to one field of the block. Its writer only.
    @inlinable @inline(__always)
    public func add(_ cell: UnsafeMutablePointer<UInt64>, _ amount: UInt64) {
        guard amount != 0 else { return }
        vhost_shims_store_relaxed_u64(cell, vhost_shims_load_relaxed_u64(cell) &+ amount)
    }

    /// The counters now, row by row of the table. Any thread.
    public func snapshot() -> Snapshot {
        var s = Snapshot()
        for row in Snapshot.counters {
            // Unsafe: the offset of a stored UInt64 field of the block (a row names a stored field).
            let cell = UnsafeRawPointer(block) + MemoryLayout<Snapshot>.offset(of: row.field)!
            s[keyPath: row.field] = vhost_shims_load_relaxed_u64(cell)
        }
        return s
    }
}
