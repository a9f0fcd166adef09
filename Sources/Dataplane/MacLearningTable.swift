import CVhostShims
import VhostSystem

/// The forwarding database: (segment, source MAC) -> port, learned from every frame. A
/// segment is a VLAN id (1...4094) or 0, the untagged default segment; the same MAC may be
/// learned in several segments, each on its own port (issue 18).
///
/// Shared by all poll threads without locks. A slot is a key word (valid bit, segment, MAC)
/// and a port word (segment << 16 | port) beside its last-seen time. Writers change a slot
/// only after claiming it: a compare-and-swap of the key word to `claimed` (not valid, so
/// readers and other writers pass it by), then the port word, then the final key with a
/// release store. A reader loads the key, the port word, and the key again: a slot that
/// changed meanwhile is a miss, and the port word must name the wanted segment, so a torn
/// read can never answer with another segment's port (the forwarder's egress membership
/// check drops any frame that would leave a port off its segment in any case).
///
/// Buckets are one cache line of 8 key words; a key lives in the bucket its keyed hash
/// names (a random key per table, so a guest cannot aim its MACs at one bucket). A full
/// bucket evicts its least recently seen entry, unless every entry was seen this second:
/// then the new MAC is not learned ("table full"; its frames are still forwarded).
///
/// Each port's entries are counted (atomically, on learn, move, eviction, ageing and
/// flush), so a port can be held to its `max_macs`.
public final class MacLearningTable: @unchecked Sendable {
    public static let slotsPerBucket = 8
    public static let maxPortID = 0x7FFF
    /// Segments are 12 bits: the untagged default segment 0 and VLANs 1...4094.
    public static let segmentCount = 4096

    public let capacity: Int
    @usableFromInline let bucketMask: UInt64
    // Unsafe: the tables are allocated once in init (keys and ports `capacity` each, counts
    // `maxPortID + 1`) and freed in deinit.
    @usableFromInline let keys: UnsafeMutablePointer<UInt64>
    @usableFromInline let ports: UnsafeMutablePointer<UInt32>
    @usableFromInline let lastSeenSeconds: UnsafeMutablePointer<UInt32>
    @usableFromInline let learnedCounts: UnsafeMutablePointer<UInt32>
    /// The hash's random key (getrandom through the system generator), one per table.
    @usableFromInline let hashKey: (UInt64, UInt64, UInt64, UInt64)
    /// Entries older than this are removed by `expire`.
    public let agingSeconds: UInt32

    @usableFromInline static let validBit: UInt64 = 1 << 63
    /// A slot one writer is changing: not valid, not free.
    @usableFromInline static let claimed: UInt64 = 1 << 62
    @usableFromInline static let macMask: UInt64 = 0xFFFF_FFFF_FFFF
    @usableFromInline static let segmentMask = 0xFFF
    /// Attempts of a learn that keeps losing claims to other writers before it gives up.
    @usableFromInline static let claimAttempts = 4

    /// `capacity` is rounded up to a whole number of buckets (a power of two).
    public init(capacity: Int = 8192, agingSeconds: UInt32 = 300) {
        var buckets = 1
        while buckets * Self.slotsPerBucket < max(capacity, Self.slotsPerBucket) { buckets <<= 1 }
        self.capacity = buckets * Self.slotsPerBucket
        bucketMask = UInt64(buckets - 1)
        self.agingSeconds = agingSeconds
        let raw = UnsafeMutableRawPointer.allocate(byteCount: self.capacity * 8, alignment: 64)
        raw.initializeMemory(as: UInt8.self, repeating: 0, count: self.capacity * 8)
        keys = raw.bindMemory(to: UInt64.self, capacity: self.capacity)
        ports = .allocate(capacity: self.capacity)
        ports.initialize(repeating: 0, count: self.capacity)
        lastSeenSeconds = .allocate(capacity: self.capacity)
        lastSeenSeconds.initialize(repeating: 0, count: self.capacity)
        learnedCounts = .allocate(capacity: Self.maxPortID + 1)
        learnedCounts.initialize(repeating: 0, count: Self.maxPortID + 1)
        var random = SystemRandomNumberGenerator()
        // Odd multipliers keep the multiply a bijection of its input.
        hashKey = (random.next(), random.next() | 1, random.next(), random.next() | 1)
    }

    deinit {
        UnsafeMutableRawPointer(keys).deallocate()
        ports.deallocate()
        lastSeenSeconds.deallocate()
        learnedCounts.deallocate()
    }

    public enum LearnResult: Equatable {
        case unchanged, learned
        case moved(from: Int)
        /// Learned in place of the least recently seen entry of a full bucket, which was on `port`.
        case evicted(port: Int)
        /// Not learned: the port has `limit` entries already.
        case limitReached
        /// Not learned: every entry of the bucket was seen this second.
        case tableFull
    }

    @inlinable
    static func key(_ mac: UInt64, segment: Int) -> UInt64 {
        validBit | UInt64(truncatingIfNeeded: segment & segmentMask) << 48 | (mac & macMask)
    }

    /// The bucket of a key: two rounds of a keyed multiply-fold (wyhash's mix), so which MACs
    /// share a bucket depends on the table's random key.
    @inlinable
    func bucket(of key: UInt64) -> Int {
        let first = (key ^ hashKey.0).multipliedFullWidth(by: hashKey.1)
        let mixed = (first.high ^ first.low ^ hashKey.2).multipliedFullWidth(by: hashKey.3)
        return Int(truncatingIfNeeded: (mixed.high ^ mixed.low) & bucketMask)
    }

    /// The port a unicast MAC was learned on in `segment`, or -1.
    @inlinable
    public func lookup(_ mac: UInt64, segment: Int = 0) -> Int {
        let wanted = Self.key(mac, segment: segment)
        let base = bucket(of: wanted) &* Self.slotsPerBucket
        for i in 0..<Self.slotsPerBucket {
            // Unsafe: base + i < capacity because the bucket index is masked.
            let slot = base &+ i
            guard vhost_shims_load_acquire_u64(keys + slot) == wanted else { continue }
            let portWord = vhost_shims_load_acquire_u32(ports + slot)
            // Changed while we read the port (claimed, replaced): a miss, never a wrong port.
            guard vhost_shims_load_relaxed_u64(keys + slot) == wanted,
                  Int(truncatingIfNeeded: portWord >> 16) == segment & Self.segmentMask else { return -1 }
            return Int(truncatingIfNeeded: portWord & 0xFFFF)
        }
        return -1
    }

    /// Learns `mac` in `segment` on `port` at time `now` (seconds). A MAC seen on another port
    /// moves at once; a port with `limit` entries learns no new MAC and takes no MAC over.
    @inlinable
    @discardableResult
    public func learn(_ mac: UInt64, segment: Int = 0, port: Int, now: UInt32, limit: Int = .max) -> LearnResult {
        let wanted = Self.key(mac, segment: segment)
        let base = bucket(of: wanted) &* Self.slotsPerBucket
        let portWord = UInt32(truncatingIfNeeded: (segment & Self.segmentMask) << 16 | (port & Self.maxPortID))
        attempts: for _ in 0..<Self.claimAttempts {
            var free = -1
            for i in 0..<Self.slotsPerBucket {
                let slot = base &+ i
                // Unsafe: slot < capacity (masked bucket).
                let entry = vhost_shims_load_acquire_u64(keys + slot)
                if entry == 0 {
                    if free < 0 { free = slot }
                    continue
                }
                if entry != wanted { continue }
                // Only write when something changed, so a known MAC costs no cache-line write.
                // Relaxed: the age is a hint that housekeeping reads concurrently.
                if vhost_shims_load_relaxed_u32(lastSeenSeconds + slot) != now { vhost_shims_store_relaxed_u32(lastSeenSeconds + slot, now) }
                let current = Int(truncatingIfNeeded: vhost_shims_load_relaxed_u32(ports + slot) & 0xFFFF)
                if current == port { return .unchanged }
                guard reserveEntry(port: port, limit: limit) else { return .limitReached }
                guard vhost_shims_compare_exchange_u64(keys + slot, wanted, Self.claimed) != 0 else {
                    releaseEntry(port: port)
                    continue attempts  // changed under us: look again
                }
                let previous = Int(truncatingIfNeeded: vhost_shims_load_relaxed_u32(ports + slot) & 0xFFFF)
                vhost_shims_store_relaxed_u32(ports + slot, portWord)
                vhost_shims_store_release_u64(keys + slot, wanted)
                releaseEntry(port: previous)
                return .moved(from: previous)
            }
            var slot = free
            var expected: UInt64 = 0
            if free < 0 {
                guard let oldest = leastRecentlySeen(base: base, now: now) else { return .tableFull }
                slot = oldest.slot
                expected = oldest.entry
            }
            guard reserveEntry(port: port, limit: limit) else { return .limitReached }
            guard vhost_shims_compare_exchange_u64(keys + slot, expected, Self.claimed) != 0 else {
                releaseEntry(port: port)
                continue attempts
            }
            let victim = Int(truncatingIfNeeded: vhost_shims_load_relaxed_u32(ports + slot) & 0xFFFF)
            vhost_shims_store_relaxed_u32(ports + slot, portWord)
            vhost_shims_store_relaxed_u32(lastSeenSeconds + slot, now)
            vhost_shims_store_release_u64(keys + slot, wanted)
            if free >= 0 { return .learned }
            releaseEntry(port: victim)
            return .evicted(port: victim)
        }
        return .tableFull
    }

    /// The valid entry of a full bucket seen longest ago, if it was not seen this second.
    @inlinable
    func leastRecentlySeen(base: Int, now: UInt32) -> (slot: Int, entry: UInt64)? {
        var oldest: (slot: Int, entry: UInt64)?
        var oldestAge: UInt32 = 0
        for slot in base..<(base &+ Self.slotsPerBucket) {
            // Unsafe: slot < capacity (masked bucket).
            let entry = vhost_shims_load_acquire_u64(keys + slot)
            guard entry & Self.validBit != 0 else { continue }
            let age = now &- vhost_shims_load_relaxed_u32(lastSeenSeconds + slot)
            // A stamp a second ahead of `now` (another thread's clock) reads as huge: skip it.
            if age > oldestAge && age < 1 << 31 {
                oldest = (slot, entry)
                oldestAge = age
            }
        }
        return oldest
    }

    /// Counts one more entry for `port` unless it has `limit` already.
    @inlinable
    func reserveEntry(port: Int, limit: Int) -> Bool {
        // Unsafe: port & maxPortID <= maxPortID, inside the counts.
        let count = learnedCounts + (port & Self.maxPortID)
        if limit != .max && Int(vhost_shims_load_relaxed_u32(count)) >= limit { return false }
        let before = vhost_shims_fetch_add_relaxed_u32(count, 1)
        if limit != .max && Int(before) >= limit {
            _ = vhost_shims_fetch_add_relaxed_u32(count, UInt32.max)
            return false
        }
        return true
    }

    @inlinable
    func releaseEntry(port: Int) {
        // Unsafe: port & maxPortID <= maxPortID.
        _ = vhost_shims_fetch_add_relaxed_u32(learnedCounts + (port & Self.maxPortID), UInt32.max)
    }

    /// The entries learned on `port`.
    public func learnedCount(port: Int) -> Int {
        Int(vhost_shims_load_relaxed_u32(learnedCounts + (port & Self.maxPortID)))
    }

    /// Empties `slot` if it still holds `entry` and `matches` its port; true when it did.
    private func clear(slot: Int, entry: UInt64, where matches: (Int) -> Bool = { _ in true }) -> Bool {
        // Unsafe: slot < capacity (the callers' loops).
        guard vhost_shims_compare_exchange_u64(keys + slot, entry, Self.claimed) != 0 else { return false }
        let port = Int(vhost_shims_load_relaxed_u32(ports + slot) & 0xFFFF)
        guard matches(port) else {
            vhost_shims_store_release_u64(keys + slot, entry)
            return false
        }
        vhost_shims_store_release_u64(keys + slot, 0)
        releaseEntry(port: port)
        return true
    }

    /// Removes every valid entry for which `remove(slot, entry)` says so; returns how many.
    private func clearEntries(where matches: (Int) -> Bool = { _ in true },
                              _ remove: (_ slot: Int, _ entry: UInt64) -> Bool) -> Int {
        var removed = 0
        for slot in 0..<capacity {
            // Unsafe: slot < capacity.
            let entry = vhost_shims_load_acquire_u64(keys + slot)
            guard entry & Self.validBit != 0, remove(slot, entry) else { continue }
            if clear(slot: slot, entry: entry, where: matches) { removed += 1 }
        }
        return removed
    }

    /// Removes entries not seen for `agingSeconds`; returns how many.
    @discardableResult
    public func expire(now: UInt32) -> Int {
        clearEntries { slot, _ in now &- vhost_shims_load_relaxed_u32(lastSeenSeconds + slot) > agingSeconds }
    }

    /// Removes every entry of `port` (a port going away or changing segments), or every
    /// entry when nil.
    @discardableResult
    public func flush(port: Int? = nil) -> Int {
        guard let port else { return clearEntries { _, _ in true } }
        return clearEntries(where: { $0 == port }) { slot, _ in
            Int(vhost_shims_load_relaxed_u32(ports + slot) & 0xFFFF) == port
        }
    }

    /// Removes one MAC, in `segment` or in every segment when nil; true when it was present.
    @discardableResult
    public func remove(_ mac: UInt64, segment: Int? = nil) -> Bool {
        if let segment {
            let wanted = Self.key(mac, segment: segment)
            let base = bucket(of: wanted) &* Self.slotsPerBucket
            // Unsafe: the bucket's slots lie below capacity (masked bucket).
            for slot in base..<(base + Self.slotsPerBucket)
            where vhost_shims_load_acquire_u64(keys + slot) == wanted && clear(slot: slot, entry: wanted) {
                return true
            }
            return false
        }
        return clearEntries { _, entry in entry & Self.macMask == mac & Self.macMask } > 0
    }

    public struct Entry: Equatable, Sendable {
        public var mac: UInt64
        /// The VLAN the MAC was learned in; 0 for the untagged default segment.
        public var segment: Int
        public var port: Int
        public var ageSeconds: UInt32
    }

    /// Every valid entry, for the management plane.
    public func entries(now: UInt32) -> [Entry] {
        var result: [Entry] = []
        for slot in 0..<capacity {
            // Unsafe: slot < capacity.
            let entry = vhost_shims_load_acquire_u64(keys + slot)
            guard entry & Self.validBit != 0 else { continue }
            let portWord = vhost_shims_load_acquire_u32(ports + slot)
            guard vhost_shims_load_relaxed_u64(keys + slot) == entry else { continue }
            result.append(Entry(mac: entry & Self.macMask, segment: Int(truncatingIfNeeded: entry >> 48) & Self.segmentMask,
                                port: Int(portWord & 0xFFFF),
                                ageSeconds: now &- vhost_shims_load_relaxed_u32(lastSeenSeconds + slot)))
        }
        return result
    }
}

/// MAC addresses as the 48-bit integers the table keys on, first octet most significant.
public enum MacAddress {
    /// Reads 6 bytes at `pointer` (a frame's destination or source field).
    @inlinable
    public static func load(_ pointer: UnsafeRawPointer) -> UInt64 {
        // Unsafe: the caller guarantees 6 readable bytes (frames are at least 14 bytes).
        let high = UInt64(UInt16(bigEndian: pointer.loadUnaligned(as: UInt16.self)))
        let low = UInt64(UInt32(bigEndian: pointer.loadUnaligned(fromByteOffset: 2, as: UInt32.self)))
        return (high << 32) | low
    }

    @inlinable
    public static func isMulticast(_ mac: UInt64) -> Bool { mac & (1 << 40) != 0 }

    public static let broadcast: UInt64 = 0xFFFF_FFFF_FFFF

    /// Six pairs of hex digits (either case) joined by ':', as the API's `MacAddress` pattern.
    /// Digit by digit: integer parsing would also take a sign ("+f:00:...").
    public static func parse(_ text: String) -> UInt64? {
        let parts = text.utf8.split(separator: UInt8(ascii: ":"), omittingEmptySubsequences: false)
        guard parts.count == 6 else { return nil }
        var value: UInt64 = 0
        for part in parts {
            guard part.count == 2 else { return nil }
            for byte in part {
                guard let digit = hexDigitValue(byte) else { return nil }
                value = (value << 4) | UInt64(digit)
            }
        }
        return value
    }

    private static func hexDigitValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }

    public static func format(_ mac: UInt64) -> String {
        (0..<6).map { i in
            let byte = UInt8(truncatingIfNeeded: mac >> (40 - 8 * UInt64(i)))
            return (byte < 16 ? "0" : "") + String(byte, radix: 16)
        }.joined(separator: ":")
    }

    public static func bytes(_ mac: UInt64) -> [UInt8] {
        (0..<6).map { UInt8(truncatingIfNeeded: mac >> (40 - 8 * UInt64($0))) }
    }
}
