/// Which chain heads (split ring) or buffer ids (packed ring) a burst has taken: a head seen
/// twice in one burst was submitted twice by the driver, and the second is refused. One stamp
/// per head; a burst is a new generation, so nothing is cleared between bursts.
/// Owned by its queue (single owner thread); `release()` frees the table.
@usableFromInline
struct BurstClaims {
    @usableFromInline let stamps: UnsafeMutablePointer<UInt32>
    @usableFromInline let count: Int
    @usableFromInline var generation: UInt32 = 0

    @usableFromInline
    init(count: Int) {
        self.count = count
        stamps = .allocate(capacity: count)
        stamps.initialize(repeating: 0, count: count)
    }

    @usableFromInline
    func release() { stamps.deallocate() }

    /// Starts a burst.
    @inlinable @inline(__always)
    mutating func begin() {
        generation &+= 1
        if generation == 0 {
            // Wrapped after 2^32 bursts: forget old stamps so none looks current.
            stamps.update(repeating: 0, count: count)
            generation = 1
        }
    }

    /// Takes `id` for this burst; false if it is out of range or already taken this burst.
    @inlinable @inline(__always)
    mutating func claim(_ id: UInt16) -> Bool {
        guard Int(id) < count else { return false }
        // Safe: id < count, the stamp table's length.
        if stamps[Int(id)] == generation { return false }
        stamps[Int(id)] = generation
        return true
    }

    /// Gives back an id `claim` accepted (the chain stays posted for a later burst).
    @inlinable @inline(__always)
    func unclaim(_ id: UInt16) {
        // Safe: only called for ids claim accepted, so id < count.
        stamps[Int(id)] = 0
    }
}
