/// What a port may send and which segment it is on (issue 18): its VLANs, the source MACs it
/// may use and learn, and its rate and storm limits. Part of `PortSpec`; set at creation and
/// changed live (PATCH) without touching the guest's connection.
///
/// OVS semantics: `vlan` alone makes an access port (frames enter and leave untagged, in that
/// VLAN); `trunk` carries those VLANs tagged, and with `vlan` too that VLAN is native
/// (untagged on the wire). A port with neither is on the untagged default segment, which
/// passes frames as they are (tags included) and only to other default-segment ports.
public struct PortPolicy: Equatable, Sendable {
    public static let validVLANs: ClosedRange<UInt16> = 1...4094
    /// A guest has a MAC or a few; 64 leaves room for containers and bridges inside it.
    public static let defaultMaxMACs = 64
    /// A kernel port is usually an uplink with a LAN behind it: no limit below the table's.
    public static let defaultKernelPortMaxMACs = 8192
    public static let maxMaxMACs = 8192
    public static let maxAllowedMACs = 64

    public struct RateLimit: Equatable, Sendable {
        /// Frames per second admitted on average, and the bucket depth in frames.
        public var pps: UInt64
        public var burst: UInt64
        public init(pps: UInt64, burst: UInt64) { self.pps = pps; self.burst = burst }
    }

    /// Per-port limits on frames that reach every port of the segment; nil: no limit.
    public struct StormControl: Equatable, Sendable {
        public var broadcastPPS: UInt64?
        public var multicastPPS: UInt64?
        public var unknownUnicastPPS: UInt64?
        public init(broadcastPPS: UInt64? = nil, multicastPPS: UInt64? = nil, unknownUnicastPPS: UInt64? = nil) {
            self.broadcastPPS = broadcastPPS
            self.multicastPPS = multicastPPS
            self.unknownUnicastPPS = unknownUnicastPPS
        }
        public var isEmpty: Bool { broadcastPPS == nil && multicastPPS == nil && unknownUnicastPPS == nil }
    }

    /// Access VLAN, or the native VLAN of a trunk.
    public var vlan: UInt16?
    /// VLANs carried tagged, sorted and unique.
    public var trunk: [UInt16] = []
    /// Source MACs the port may send from (anti-spoofing), as `MacAddress.parse` gives them; nil: any.
    public var allowedMACs: [UInt64]?
    /// MACs the switch learns on this port at most.
    public var maxMACs: Int = PortPolicy.defaultMaxMACs
    public var rateLimit: RateLimit?
    public var stormControl: StormControl?
    /// Receive queues pinned to poll threads (as OVS's pmd-rxq-affinity), by queue pair:
    /// its guest transmit ring (a kernel port: socket i, one per poll thread) is served by that thread;
    /// the port's other queues are placed automatically. Checked against the port's queues
    /// and the daemon's poll threads by `PortSpec.policyProblem(pollThreads:)`.
    public var rxqAffinity: [Int: Int] = [:]

    public init() {}

    /// The default policy of a port of `kind`: the same but for `maxMACs`.
    public init(defaultFor kind: PortSpec.Kind) {
        if kind.kernelInterface != nil { maxMACs = Self.defaultKernelPortMaxMACs }
    }

    /// The first rule the policy breaks, for a 400 reply naming the field; nil when valid.
    public var problem: String? {
        if let vlan, !Self.validVLANs.contains(vlan) { return "vlan must be an integer from 1 to 4094" }
        if let bad = trunk.first(where: { !Self.validVLANs.contains($0) }) { return "trunk VLAN \(bad) is not from 1 to 4094" }
        if Set(trunk).count != trunk.count { return "trunk lists a VLAN twice" }
        if let vlan, trunk.contains(vlan) { return "trunk must not list the native vlan \(vlan)" }
        if let allowedMACs {
            if allowedMACs.count > Self.maxAllowedMACs { return "allowed_macs lists more than \(Self.maxAllowedMACs) MACs" }
            if allowedMACs.contains(where: { MacAddress.isMulticast($0) }) { return "allowed_macs must list unicast MACs" }
        }
        if maxMACs < 1 || maxMACs > Self.maxMaxMACs { return "max_macs must be an integer from 1 to \(Self.maxMaxMACs)" }
        if let rateLimit, rateLimit.pps == 0 || rateLimit.burst == 0 { return "rate_limit.pps and rate_limit.burst must be at least 1" }
        if let queue = rxqAffinity.keys.first(where: { !(0..<PortSpec.maxQueuePairs).contains($0) }) {
            return "rxq_affinity queue \(queue) is not from 0 to \(PortSpec.maxQueuePairs - 1)"
        }
        if let thread = rxqAffinity.values.first(where: { $0 < 0 }) { return "rxq_affinity thread \(thread) is negative" }
        return nil
    }
}
