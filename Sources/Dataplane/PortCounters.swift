import Virtio

/// The switch-level counters of every port, one block per poll thread with a row per port
/// id. Ring-level counts (packets, bytes, ring drops) live in the queues' own statistics.
typealias PortCounters = PerThreadCounters<PortSwitchCounter>

/// The switch-level counters of a port: the index of each in a `PortCounters` block, and,
/// through `descriptor`, the row that describes it (an exhaustive switch, so a case cannot
/// be added without its JSON field and /metrics series).
public enum PortSwitchCounter: Int, IndexedCounter {
    case rxPackets, rxBytes, rxBroadcast, rxMulticast
    case size64, size65To127, size128To255, size256To511, size512To1023, size1024To1518, size1519Plus
    case txPackets, txDropped
    case dropsRingNotReady, dropsMTUExceeded, dropsMACTableFull, dropsHairpin
    case offloadChecksumsCompleted, offloadFramesSegmented, offloadSegments
    case dropsOffloadMalformed
    // Segments and port security (issue 18).
    case dropsVLANNotCarried, dropsVLANTaggedOnAccess, dropsVLANMalformed, dropsVLANEgressNotCarried
    case dropsSpoofed, macsNotLearnedLimit, macEvictions
    case dropsRateLimited, dropsStormBroadcast, dropsStormMulticast, dropsStormUnknownUnicast

    public var descriptor: CounterDescriptor<PortSwitchStatistics> {
        let field = \PortSwitchStatistics.[self]
        switch self {
        case .rxPackets:
            return .init(field, json: "rx_packets", .frames, "Frames the forwarder took from the port.", metric: .switchPackets, .rx)
        case .rxBytes:
            return .init(field, json: "rx_bytes", .bytes, "Bytes of the frames the forwarder took from the port.", metric: .switchBytes, .rx)
        case .rxBroadcast:
            return .init(field, json: "rx_broadcast", .frames, "Received frames to ff:ff:ff:ff:ff:ff.", metric: .switchBroadcast, .rx)
        case .rxMulticast:
            return .init(field, json: "rx_multicast", .frames, "Received frames to other group addresses.", metric: .switchMulticast, .rx)
        case .size64: return Self.sizeBucket(field, "64")
        case .size65To127: return Self.sizeBucket(field, "65-127")
        case .size128To255: return Self.sizeBucket(field, "128-255")
        case .size256To511: return Self.sizeBucket(field, "256-511")
        case .size512To1023: return Self.sizeBucket(field, "512-1023")
        case .size1024To1518: return Self.sizeBucket(field, "1024-1518")
        case .size1519Plus: return Self.sizeBucket(field, "1519+")
        case .txPackets:
            return .init(field, json: "tx_packets", .frames, "Frames the port's transmit side took from the forwarder.",
                         metric: .switchPackets, .tx)
        case .txDropped:
            return .init(field, json: "tx_dropped", .frames,
                         "Frames handed to the port's transmit side that it did not take (its rings or socket count why).",
                         metric: .switchDrops, .tx, .reason("not_taken"))
        case .dropsRingNotReady:
            return Self.drop(field, "ring_not_ready", .tx, "Frames for the port while its rings were not ready.")
        case .dropsMTUExceeded:
            return Self.drop(field, "mtu_exceeded", .rx, "Received frames longer than the port's MTU allows (without GSO).")
        case .dropsMACTableFull:
            return .init(field, json: "drops.mac_table_full", .frames,
                         "Received frames whose source MAC could not be learned because the table was full (the frame is still forwarded).",
                         metric: .switchMACTableFull, .rx)
        case .dropsHairpin:
            return Self.drop(field, "hairpin", .rx, "Frames whose destination was learned on the port they came in on.")
        case .offloadChecksumsCompleted:
            return .init(field, json: "tx_offloads_done.checksums_completed", .frames,
                         "Partial checksums the switch completed because the port did not negotiate checksum offload.",
                         metric: .switchChecksumsCompleted, .tx)
        case .offloadFramesSegmented:
            return .init(field, json: "tx_offloads_done.frames_segmented", .frames,
                         "Super-frames the switch segmented (UFO: fragmented) because the port did not negotiate that offload.",
                         metric: .switchFramesSegmented, .tx)
        case .offloadSegments:
            return .init(field, json: "tx_offloads_done.segments", .frames, "Segments or fragments those super-frames made.",
                         metric: .switchSegments, .tx)
        case .dropsOffloadMalformed:
            return Self.drop(field, "offload_malformed", .tx,
                             "Frames for the port whose offload header did not match the frame (the switch could not complete or segment them).")
        case .dropsVLANNotCarried:
            return Self.drop(field, "vlan_not_carried", .rx,
                             "Received frames in a VLAN the port does not carry (a trunk's tag not in its list, untagged on a trunk without a native VLAN).")
        case .dropsVLANTaggedOnAccess:
            return Self.drop(field, "vlan_tagged_on_access", .rx, "Received frames with a VLAN tag (not 0) on an access port.")
        case .dropsVLANMalformed:
            return Self.drop(field, "vlan_malformed", .rx,
                             "Received tagged frames too short for their tag, or whose offload header points into it.")
        case .dropsVLANEgressNotCarried:
            return .init(field, json: "drops.vlan_egress_not_carried", .frames,
                         "Frames for a MAC learned on the port in a segment the port no longer carries (a stale or racing table entry).",
                         metric: .switchDrops, .tx, .reason("vlan_not_carried"))
        case .dropsSpoofed:
            return Self.drop(field, "spoofed", .rx, "Received frames whose source MAC is not in the port's allowed_macs.")
        case .macsNotLearnedLimit:
            return .init(field, json: "macs_not_learned_limit", .frames,
                         "Received frames whose source MAC was not learned because the port has max_macs entries (the frame is still forwarded).",
                         metric: .switchMACLimitReached, .rx)
        case .macEvictions:
            return .init(field, json: "mac_evictions", .events,
                         "Table entries this port's new MACs replaced in full buckets (the least recently seen entry goes).",
                         metric: .switchMACEvictions, .rx)
        case .dropsRateLimited:
            return Self.drop(field, "rate_limited", .rx, "Received frames over the port's rate_limit.")
        case .dropsStormBroadcast:
            return Self.drop(field, "storm_broadcast", .rx, "Received broadcast frames over storm_control.broadcast_pps.")
        case .dropsStormMulticast:
            return Self.drop(field, "storm_multicast", .rx, "Received multicast frames over storm_control.multicast_pps.")
        case .dropsStormUnknownUnicast:
            return Self.drop(field, "storm_unknown_unicast", .rx,
                             "Received unicast frames to unknown MACs (flooded) over storm_control.unknown_unicast_pps.")
        }
    }

    public static let rows = allCases.map(\.descriptor)

    /// The size histogram's bucket of a frame of `length` bytes.
    @inline(__always)
    static func sizeBucket(ofLength length: Int) -> Self {
        switch length {
        case ...64: .size64
        case ...127: .size65To127
        case ...255: .size128To255
        case ...511: .size256To511
        case ...1023: .size512To1023
        case ...1518: .size1024To1518
        default: .size1519Plus
        }
    }

    /// A switch drop row: JSON field `drops.<reason>`, counted in frames, a sample of
    /// `vhost_switch_port_switch_drops_total` with that reason.
    private static func drop(_ field: any WritableKeyPath<PortSwitchStatistics, UInt64> & Sendable, _ reason: String,
                             _ direction: CounterLabel, _ help: String) -> CounterDescriptor<PortSwitchStatistics> {
        .init(field, json: "drops." + reason, .frames, help, metric: .switchDrops, direction, .reason(reason))
    }

    private static func sizeBucket(_ field: any WritableKeyPath<PortSwitchStatistics, UInt64> & Sendable, _ bucket: String)
        -> CounterDescriptor<PortSwitchStatistics> {
        .init(field, json: "rx_size_histogram." + bucket, .frames, "Received frames of \(bucket) bytes.", metric: .switchFrameSizes, .rx,
              CounterLabel("size", bucket))
    }
}

/// A port's switch-level counters summed over poll threads, indexed by counter.
public typealias PortSwitchStatistics = IndexedCounterValues<PortSwitchCounter>

extension CounterMetricFamily {
    public static let switchPackets = CounterMetricFamily(
        "vhost_switch_port_switched_packets_total",
        help: "Frames the forwarder took from the port (rx) or handed to its transmit side (tx), summed over poll threads.")
    public static let switchBytes = port("switched_bytes", help: "Bytes of the frames the forwarder took from the port.")
    public static let switchBroadcast = port("broadcast_packets", help: "Frames to the broadcast address.")
    public static let switchMulticast = port("multicast_packets", help: "Frames to other group addresses.")
    public static let switchFrameSizes = port("frames_by_size", help: "Frames by length in bytes (the size label).")
    public static let switchDrops = port("switch_drops", help: "Frames the forwarder dropped for the port, by reason (not_taken: the port's transmit side refused them; its own drops say why).")
    public static let switchMACTableFull = port("mac_table_full", help: "Frames whose source MAC was not learned because the table was full.")
    public static let switchMACLimitReached = port("mac_limit_reached", help: "Frames whose source MAC was not learned because the port had max_macs entries.")
    public static let switchMACEvictions = port("mac_evictions", help: "MAC table entries replaced by this port's new MACs because their bucket was full.")
    public static let switchChecksumsCompleted = port("offload_checksums_completed", help: "Partial checksums the switch completed for a port without checksum offload.")
    public static let switchFramesSegmented = port("offload_frames_segmented", help: "Super-frames the switch segmented or fragmented for a port without that offload.")
    public static let switchSegments = port("offload_segments", help: "Segments or fragments made from those super-frames.")
}
