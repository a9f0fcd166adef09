import Dataplane

/// The settings of a `PortPolicy`, by the names the API, the state file and events use for
/// them: the keys PATCH /v1/ports/{name} may change, and what a `port.updated` event lists.
public enum PortPolicyField: String, CaseIterable, Sendable {
    case vlan
    case trunk
    case allowedMACs = "allowed_macs"
    case maxMACs = "max_macs"
    case rateLimit = "rate_limit"
    case stormControl = "storm_control"
    case rxqAffinity = "rxq_affinity"

    public static let names: Set<String> = Set(allCases.map(\.rawValue))

    /// The fields whose values differ between `old` and `new`, in declaration order.
    public static func changed(from old: PortPolicy, to new: PortPolicy) -> [PortPolicyField] {
        allCases.filter { field in
            switch field {
            case .vlan: old.vlan != new.vlan
            case .trunk: old.trunk != new.trunk
            case .allowedMACs: old.allowedMACs != new.allowedMACs
            case .maxMACs: old.maxMACs != new.maxMACs
            case .rateLimit: old.rateLimit != new.rateLimit
            case .stormControl: old.stormControl != new.stormControl
            case .rxqAffinity: old.rxqAffinity != new.rxqAffinity
            }
        }
    }
}
