import VhostSystem

/// A port's `PortPolicy` as one poll thread applies it: what `BurstForwarder` reads once per
/// burst (ingress) and once per destination (egress), with no lock. Built by `Switch.republish`
/// into the thread's `PollSnapshot`, whose `PortRulesTable` owns the memory the pointers name.
///
/// Segments: 0 is the untagged default segment, 1...4094 are VLANs.
struct PortRules {
    /// The segment of frames that enter and leave the port untagged: 0 on a default-segment
    /// port, the access VLAN, a trunk's native VLAN, or `noSegment` (a trunk without one).
    var untaggedSegment = 0
    /// A trunk's tagged VLANs, one bit per VLAN id (64 words); nil on other ports.
    var taggedSegments: UnsafePointer<UInt64>?
    /// Source MACs the port may use, or nil for any.
    var allowedMACs: UnsafePointer<UInt64>?
    var allowedMACCount = 0
    var maxMACs = PortPolicy.defaultMaxMACs
    /// This thread's share of the port's rate limit, or nil.
    var rate: TokenBucket?
    /// This thread's share of the port's storm limits (frames per second; `.max`: none), or nil.
    var storm: FloodKinds?
    /// Changes whenever the port's limits do, so a thread's limiter state starts afresh.
    var generation: UInt64 = 0
    /// The default segment, any source MAC, no limits: the forwarder's plain path (one branch).
    var isPlain = true
    /// Allowed source MACs, a rate limit or storm control: checks per frame (or per burst)
    /// beyond the segment's.
    var hasLimits = false

    static let noSegment = 0xFFFF
    static var plain: PortRules { PortRules() }

    struct TokenBucket {
        /// TSC cycles per token (one frame).
        var cyclesPerToken: UInt64
        /// Tokens the bucket holds at most.
        var depth: UInt64
    }

    /// A number per kind of frame that every port of its segment gets.
    struct FloodKinds {
        var broadcast: UInt64
        var multicast: UInt64
        var unknownUnicast: UInt64

        static var unlimited: FloodKinds { FloodKinds(broadcast: .max, multicast: .max, unknownUnicast: .max) }
        static var none: FloodKinds { FloodKinds(broadcast: 0, multicast: 0, unknownUnicast: 0) }

        enum Kind { case broadcast, multicast, unknownUnicast }

        @inline(__always)
        subscript(kind: Kind) -> UInt64 {
            get {
                switch kind {
                case .broadcast: broadcast
                case .multicast: multicast
                case .unknownUnicast: unknownUnicast
                }
            }
            set {
                switch kind {
                case .broadcast: broadcast = newValue
                case .multicast: multicast = newValue
                case .unknownUnicast: unknownUnicast = newValue
                }
            }
        }
    }

    /// An access port: one VLAN, untagged.
    @inline(__always) var isAccess: Bool { taggedSegments == nil && untaggedSegment != 0 }

    /// Whether frames of `segment` may leave (and enter) the port.
    @inline(__always)
    func carries(_ segment: Int) -> Bool {
        if segment == untaggedSegment { return true }
        guard let taggedSegments else { return false }
        // Unsafe: segment is a VLAN id below 4096 here (the untagged values were compared above).
        return segment < MacLearningTable.segmentCount && taggedSegments[segment >> 6] & (1 << UInt64(segment & 63)) != 0
    }

    /// True when `source` may send from `mac`.
    @inline(__always)
    func allows(sourceMAC mac: UInt64) -> Bool {
        guard let allowedMACs else { return true }
        // Unsafe: the list holds allowedMACCount MACs (PortRulesTable).
        for i in 0..<allowedMACCount where allowedMACs[i] == mac { return true }
        return false
    }
}

/// The rules of every port for one poll thread, indexed by port id, and the memory their
/// pointers name. Immutable once built; freed with the snapshot that holds it. A table
/// patched from another (`replacing(port:with:count:)`) copies the other ports' rules as
/// they are (a memcpy) and shares their memory.
final class PortRulesTable {
    let rules: UnsafeMutableBufferPointer<PortRules>
    /// Per port id, the trunk bitmap and allowed-MAC list its rules point into (nil: none).
    private let storage: [PortRulesStorage?]

    /// A port's policy and the fraction of its receive queues this thread serves
    /// (`share.served` of `share.total`; limits are divided in that proportion).
    struct Entry {
        var policy: PortPolicy
        var generation: UInt64
        var share: (served: Int, total: Int)
    }

    /// `entries[id]` for every port id below `entries.count` (nil: no such port).
    init(_ entries: [Entry?]) {
        rules = .allocate(capacity: entries.count)
        rules.initialize(repeating: .plain)
        var storage = [PortRulesStorage?](repeating: nil, count: entries.count)
        let cyclesPerSecond = Self.cyclesPerSecond
        for (id, entry) in entries.enumerated() {
            guard let entry else { continue }
            (rules[id], storage[id]) = Self.compile(entry, cyclesPerSecond: cyclesPerSecond)
        }
        self.storage = storage
    }

    /// `table` with port `id`'s rules replaced by `entry`'s (nil: no such port), `count` ids
    /// long (ids past the old table's end are plain).
    private init(patching table: PortRulesTable, port id: Int, with entry: Entry?, count: Int) {
        rules = .allocate(capacity: count)
        let kept = min(count, table.rules.count)
        // Unsafe: kept <= both tables' sizes; PortRules is trivial (pointers into shared storage).
        rules.baseAddress!.initialize(from: table.rules.baseAddress!, count: kept)
        if count > kept { (rules.baseAddress! + kept).initialize(repeating: .plain, count: count - kept) }
        var storage = Array(table.storage.prefix(kept))
        storage.append(contentsOf: repeatElement(nil, count: count - kept))
        if id < count {
            if let entry {
                (rules[id], storage[id]) = Self.compile(entry, cyclesPerSecond: Self.cyclesPerSecond)
            } else {
                (rules[id], storage[id]) = (.plain, nil)
            }
        }
        self.storage = storage
    }

    /// This table with port `id`'s rules replaced by `entry`'s (nil: no such port), `count` ids long.
    func replacing(port id: Int, with entry: Entry?, count: Int) -> PortRulesTable {
        PortRulesTable(patching: self, port: id, with: entry, count: count)
    }

    deinit { rules.deallocate() }

    var count: Int { rules.count }

    private static var cyclesPerSecond: Double { MonotonicClock.cyclesPerNanosecond * 1e9 }

    private static func compile(_ entry: Entry, cyclesPerSecond: Double) -> (PortRules, PortRulesStorage?) {
        let policy = entry.policy
        var rules = PortRules()
        rules.generation = entry.generation
        rules.maxMACs = policy.maxMACs
        let storage = PortRulesStorage(policy)
        if let bitmap = storage?.taggedSegments {
            rules.taggedSegments = UnsafePointer(bitmap)
            rules.untaggedSegment = policy.vlan.map(Int.init) ?? PortRules.noSegment
        } else {
            rules.untaggedSegment = policy.vlan.map(Int.init) ?? 0
        }
        if let list = storage?.allowedMACs {
            rules.allowedMACs = UnsafePointer(list)
            rules.allowedMACCount = policy.allowedMACs?.count ?? 0
        }
        // A thread that serves none of the port's queues sees only the frames the switch
        // injects for it: give it the whole limit.
        let (served, total) = entry.share
        func portion(_ value: UInt64) -> UInt64 {
            guard served > 0, total > served else { return value }
            return max(1, value.multipliedReportingOverflow(by: UInt64(served)).overflow
                       ? value / UInt64(total) * UInt64(served) : value * UInt64(served) / UInt64(total))
        }
        if let rate = policy.rateLimit {
            let pps = Double(portion(rate.pps))
            rules.rate = .init(cyclesPerToken: UInt64(max(1, min(cyclesPerSecond / pps, 1e18))), depth: portion(rate.burst))
        }
        if let storm = policy.stormControl, !storm.isEmpty {
            rules.storm = .init(broadcast: storm.broadcastPPS.map(portion) ?? .max,
                                multicast: storm.multicastPPS.map(portion) ?? .max,
                                unknownUnicast: storm.unknownUnicastPPS.map(portion) ?? .max)
        }
        rules.hasLimits = rules.allowedMACs != nil || rules.rate != nil || rules.storm != nil
        rules.isPlain = rules.untaggedSegment == 0 && rules.taggedSegments == nil && !rules.hasLimits
        return (rules, storage)
    }
}

/// The memory one port's compiled rules point into: a trunk's VLAN bitmap and the allowed
/// source MACs. Shared by every table patched from the one that compiled it.
final class PortRulesStorage {
    // Unsafe: allocated in init, freed in deinit; read by poll threads through PortRules.
    let taggedSegments: UnsafeMutablePointer<UInt64>?
    let allowedMACs: UnsafeMutablePointer<UInt64>?

    /// nil when the policy needs neither (no trunk, any source MAC).
    init?(_ policy: PortPolicy) {
        guard !policy.trunk.isEmpty || policy.allowedMACs != nil else { return nil }
        if policy.trunk.isEmpty {
            taggedSegments = nil
        } else {
            let bitmap = UnsafeMutablePointer<UInt64>.allocate(capacity: MacLearningTable.segmentCount / 64)
            bitmap.initialize(repeating: 0, count: MacLearningTable.segmentCount / 64)
            for vlan in policy.trunk { bitmap[Int(vlan) >> 6] |= 1 << UInt64(vlan & 63) }
            taggedSegments = bitmap
        }
        if let allowed = policy.allowedMACs {
            let list = UnsafeMutablePointer<UInt64>.allocate(capacity: max(1, allowed.count))
            list.initialize(from: allowed, count: allowed.count)
            allowedMACs = list
        } else {
            allowedMACs = nil
        }
    }

    deinit {
        taggedSegments?.deallocate()
        allowedMACs?.deallocate()
    }
}
