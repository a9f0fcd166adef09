import Virtio

/// Drops per segment (VLAN), one block per poll thread with a row per segment (0...4095):
/// the thread adds to its own block, readers sum the blocks (`Switch.segmentStatistics()`).
typealias SegmentCounters = PerThreadCounters<SegmentDropCounter>

extension PerThreadCounters<SegmentDropCounter> {
    convenience init() { self.init(rows: MacLearningTable.segmentCount) }
}

/// The drops counted per segment; each case's row (`descriptor`) gives its /metrics series.
public enum SegmentDropCounter: Int, IndexedCounter {
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

    public static let rows = allCases.map(\.descriptor)
}

/// One segment's drops summed over poll threads (`Switch.segmentStatistics()`).
public struct SegmentStatistics: Sendable, Equatable {
    /// 0 is the untagged default segment, 1...4094 the VLANs (a tag's VLAN when the frame
    /// was dropped for carrying it).
    public var segment: Int
    public var drops: SegmentDropStatistics
}

/// A segment's drop counters, indexed by counter.
public typealias SegmentDropStatistics = IndexedCounterValues<SegmentDropCounter>

extension CounterMetricFamily {
    public static let segmentDrops = CounterMetricFamily(
        "vhost_switch_segment_drops_total",
        help: "Frames dropped per segment (label vlan; 0 is the untagged default segment), by reason, summed over ports and poll threads.")
}
