import CVhostShims
import Virtio

/// Drops per segment (VLAN), one block per poll thread as `PortCounters`: the thread adds
/// to its own block, readers sum the blocks (`Switch.segmentStatistics()`).
final class SegmentCounters: @unchecked Sendable {
    static let stride = (SegmentDropCounter.allCases.count + 7) & ~7
    // Unsafe: segmentCount * stride counters, allocated once, zeroed, freed in deinit.
    let base: UnsafeMutablePointer<UInt64>

    init() {
        let count = MacLearningTable.segmentCount * Self.stride
        base = .allocate(capacity: count)
        base.initialize(repeating: 0, count: count)
    }

    deinit { base.deallocate() }

    /// Poll thread only: adds to its own block.
    @inline(__always)
    func add(_ counter: SegmentDropCounter, segment: Int, _ amount: UInt64) {
        // Unsafe: segment & 0xFFF < segmentCount, counter < stride.
        let slot = base + ((segment & 0xFFF) &* Self.stride &+ counter.rawValue)
        vhost_shims_store_relaxed_u64(slot, vhost_shims_load_relaxed_u64(slot) &+ amount)
    }

    func value(_ counter: SegmentDropCounter, segment: Int) -> UInt64 {
        vhost_shims_load_relaxed_u64(base + (segment * Self.stride + counter.rawValue))
    }
}

/// The drops counted per segment; each case's row (`descriptor`) gives its /metrics series.
public enum SegmentDropCounter: Int, CaseIterable, Sendable {
    case notCarried, taggedOnAccess, spoofed, rateLimited, stormBroadcast, stormMulticast, stormUnknownUnicast

    public var descriptor: CounterDescriptor<SegmentDropStatistics> {
        let field = \SegmentDropStatistics.[self]
        let reason: String = switch self {
        case .notCarried: "vlan_not_carried"
        case .taggedOnAccess: "vlan_tagged_on_access"
        case .spoofed: "spoofed"
        case .rateLimited: "rate_limited"
        case .stormBroadcast: "storm_broadcast"
        case .stormMulticast: "storm_multicast"
        case .stormUnknownUnicast: "storm_unknown_unicast"
        }
        return .init(field, json: reason, .frames, "Frames of the segment dropped: \(reason).", metric: .segmentDrops, .reason(reason))
    }
}

/// One segment's drops summed over poll threads (`Switch.segmentStatistics()`).
public struct SegmentStatistics: Sendable, Equatable {
    /// 0 is the untagged default segment, 1...4094 the VLANs (a tag's VLAN when the frame
    /// was dropped for carrying it).
    public var segment: Int
    public var drops: SegmentDropStatistics

    public init(segment: Int, drops: SegmentDropStatistics) {
        self.segment = segment
        self.drops = drops
    }
}

/// A segment's drop counters, indexed by counter.
public struct SegmentDropStatistics: Sendable, Equatable, CounterSnapshot {
    private var values = [UInt64](repeating: 0, count: SegmentDropCounter.allCases.count)

    public static let counters = SegmentDropCounter.allCases.map(\.descriptor)

    public init() {}

    public subscript(counter: SegmentDropCounter) -> UInt64 {
        get { values[counter.rawValue] }
        set { values[counter.rawValue] = newValue }
    }

    var isZero: Bool { values.allSatisfy { $0 == 0 } }
}

extension CounterMetricFamily {
    public static let segmentDrops = CounterMetricFamily(
        "vhost_switch_segment_drops_total",
        help: "Frames dropped per segment (label vlan; 0 is the untagged default segment), by reason, summed over ports and poll threads.")
}
