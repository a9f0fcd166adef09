/// Hands out port ids, the lowest free one first (ids stay dense: they index the per-thread
/// counter blocks and the snapshots' tables), in O(log n) instead of a scan from 0.
struct PortIDAllocator {
    let limit: Int
    /// Every id below this was handed out at some point.
    private var nextUnused = 0
    /// Ids below `nextUnused` that were released since, highest first (the lowest is last).
    private var released: [Int] = []

    init(limit: Int) { self.limit = limit }

    /// The lowest free id, now taken; nil when all `limit` ids are taken.
    mutating func allocate() -> Int? {
        if let id = released.popLast() { return id }
        guard nextUnused < limit else { return nil }
        defer { nextUnused += 1 }
        return nextUnused
    }

    /// Gives `id` back (it must have been allocated and not released since).
    mutating func release(_ id: Int) {
        precondition(id >= 0 && id < nextUnused, "port id \(id) was never allocated")
        if id == nextUnused - 1 {
            // The highest id: shrink instead, with every released id just below it.
            nextUnused -= 1
            while let last = released.first, last == nextUnused - 1 {
                released.removeFirst()
                nextUnused -= 1
            }
            return
        }
        let at = released.partitioningIndex(where: { $0 < id })
        precondition(at == 0 || released[at - 1] != id, "port id \(id) released twice")
        released.insert(id, at: at)
    }
}
