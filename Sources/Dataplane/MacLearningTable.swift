import CVhostShims
import VhostSystem

/// The forwarding database: source MAC -> port, learned from every frame.
///
/// Shared by all poll threads without locks. Each entry is one 64-bit word
/// (valid bit, port id, MAC) stored with relaxed atomic stores, so a reader sees either the
/// old or the new entry, never half of one. Two threads learning different MACs into the
/// same free slot at once can lose one of them; the next frame from that MAC learns it
/// again. That is the usual trade of a software switch for a lock-free hot path.
///
/// Buckets are one cache line (8 slots); a MAC lives in the bucket its hash names, so a
/// lookup reads one line and a full bucket is reported as "table full".
public final class MacLearningTable: @unchecked Sendable {
    public static let slotsPerBucket = 8
    public static let maxPortID = 0x7FFF

    public let capacity: Int
    @usableFromInline let bucketMask: UInt64
    // Unsafe: both tables are allocated once in init, sized `capacity`, and freed in deinit.
    @usableFromInline let slots: UnsafeMutablePointer<UInt64>
    @usableFromInline let lastSeenSeconds: UnsafeMutablePointer<UInt32>
    /// Entries older than this are removed by `expire`.
    public let agingSeconds: UInt32

    @usableFromInline static let validBit: UInt64 = 1 << 63
    @usableFromInline static let macMask: UInt64 = 0xFFFF_FFFF_FFFF

    /// `capacity` is rounded up to a whole number of buckets (a power of two).
    public init(capacity: Int = 8192, agingSeconds: UInt32 = 300) {
        var buckets = 1
        while buckets * Self.slotsPerBucket < max(capacity, Self.slotsPerBucket) { buckets <<= 1 }
        self.capacity = buckets * Self.slotsPerBucket
        bucketMask = UInt64(buckets - 1)
        self.agingSeconds = agingSeconds
        let raw = UnsafeMutableRawPointer.allocate(byteCount: self.capacity * 8, alignment: 64)
        raw.initializeMemory(as: UInt8.self, repeating: 0, count: self.capacity * 8)
        slots = raw.bindMemory(to: UInt64.self, capacity: self.capacity)
        lastSeenSeconds = .allocate(capacity: self.capacity)
        lastSeenSeconds.initialize(repeating: 0, count: self.capacity)
    }

    deinit {
        UnsafeMutableRawPointer(slots).deallocate()
        lastSeenSeconds.deallocate()
    }

    public enum LearnResult: Equatable {
        case unchanged, learned, moved(from: Int), tableFull
    }

    @inlinable
    static func bucket(of mac: UInt64, mask: UInt64) -> Int {
        // Fibonacci hashing: the high bits of the product are well mixed.
        Int(truncatingIfNeeded: ((mac &* 0x9E37_79B9_7F4A_7C15) >> 40) & mask)
    }

    /// The port a unicast MAC was learned on, or -1.
    @inlinable
    public func lookup(_ mac: UInt64) -> Int {
        let base = Self.bucket(of: mac, mask: bucketMask) &* Self.slotsPerBucket
        let wanted = Self.validBit | mac
        for i in 0..<Self.slotsPerBucket {
            // Unsafe: base + i < capacity because the bucket index is masked.
            let entry = vhost_shims_load_relaxed_u64(slots + (base &+ i))
            if entry & (Self.validBit | Self.macMask) == wanted {
                return Int(truncatingIfNeeded: (entry >> 48) & 0x7FFF)
            }
        }
        return -1
    }

    /// Learns `mac` on `port` at time `now` (seconds). A MAC seen on another port moves at once.
    @inlinable
    @discardableResult
    public func learn(_ mac: UInt64, port: Int, now: UInt32) -> LearnResult {
        let base = Self.bucket(of: mac, mask: bucketMask) &* Self.slotsPerBucket
        let newEntry = Self.validBit | (UInt64(truncatingIfNeeded: port & Self.maxPortID) << 48) | mac
        var free = -1
        for i in 0..<Self.slotsPerBucket {
            let slot = base &+ i
            // Unsafe: slot < capacity (masked bucket).
            let entry = vhost_shims_load_relaxed_u64(slots + slot)
            if entry & Self.validBit == 0 {
                if free < 0 { free = slot }
                continue
            }
            if entry & Self.macMask == mac {
                // Only write when something changed, so a known MAC costs no cache-line write.
                // Relaxed atomics: the housekeeping thread reads the age concurrently.
                if vhost_shims_load_relaxed_u32(lastSeenSeconds + slot) != now { vhost_shims_store_relaxed_u32(lastSeenSeconds + slot, now) }
                if entry == newEntry { return .unchanged }
                vhost_shims_store_relaxed_u64(slots + slot, newEntry)
                return .moved(from: Int(truncatingIfNeeded: (entry >> 48) & 0x7FFF))
            }
        }
        guard free >= 0 else { return .tableFull }
        vhost_shims_store_relaxed_u32(lastSeenSeconds + free, now)
        vhost_shims_store_relaxed_u64(slots + free, newEntry)
        return .learned
    }

    /// Removes entries not seen for `agingSeconds`; returns how many.
    @discardableResult
    public func expire(now: UInt32) -> Int {
        var removed = 0
        for slot in 0..<capacity {
            let entry = vhost_shims_load_relaxed_u64(slots + slot)
            guard entry & Self.validBit != 0 else { continue }
            if now &- vhost_shims_load_relaxed_u32(lastSeenSeconds + slot) > agingSeconds {
                vhost_shims_store_relaxed_u64(slots + slot, 0)
                removed += 1
            }
        }
        return removed
    }

    /// Removes every entry of `port` (a port going away), or every entry when nil.
    @discardableResult
    public func flush(port: Int? = nil) -> Int {
        var removed = 0
        for slot in 0..<capacity {
            let entry = vhost_shims_load_relaxed_u64(slots + slot)
            guard entry & Self.validBit != 0 else { continue }
            if let port, Int((entry >> 48) & 0x7FFF) != port { continue }
            vhost_shims_store_relaxed_u64(slots + slot, 0)
            removed += 1
        }
        return removed
    }

    /// Removes one MAC; true when it was present.
    @discardableResult
    public func remove(_ mac: UInt64) -> Bool {
        let base = Self.bucket(of: mac, mask: bucketMask) &* Self.slotsPerBucket
        for i in 0..<Self.slotsPerBucket {
            let entry = vhost_shims_load_relaxed_u64(slots + base + i)
            if entry & Self.validBit != 0, entry & Self.macMask == mac {
                vhost_shims_store_relaxed_u64(slots + base + i, 0)
                return true
            }
        }
        return false
    }

    public struct Entry: Equatable, Sendable {
        public var mac: UInt64
        public var port: Int
        public var ageSeconds: UInt32
    }

    /// Every valid entry, for the management plane.
    public func entries(now: UInt32) -> [Entry] {
        var result: [Entry] = []
        for slot in 0..<capacity {
            let entry = vhost_shims_load_relaxed_u64(slots + slot)
            guard entry & Self.validBit != 0 else { continue }
            result.append(Entry(mac: entry & Self.macMask, port: Int((entry >> 48) & 0x7FFF), ageSeconds: now &- vhost_shims_load_relaxed_u32(lastSeenSeconds + slot)))
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

    public static func parse(_ text: String) -> UInt64? {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 6 else { return nil }
        var value: UInt64 = 0
        for part in parts {
            guard part.count == 2, let byte = UInt8(part, radix: 16) else { return nil }
            value = (value << 8) | UInt64(byte)
        }
        return value
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
