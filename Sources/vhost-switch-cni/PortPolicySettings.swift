import ManagementClient

/// The segment and port-security keys of the network configuration (issue 18): `vlan`,
/// `trunk`, `macSpoofCheck`, `maxMacs` and `rateLimit`, checked here as hostile input and
/// passed to the daemon as the port's vlan, trunk, allowed_macs, max_macs and rate_limit.
struct PortPolicySettings: Equatable {
    static let vlans = 1...4094
    static let maxMacsRange = 1...8192
    /// Frames per second and bucket depth: at least 1; the upper bound only keeps the number
    /// well inside what the daemon reads as an unsigned 64-bit value.
    static let rateRange = 1...1_000_000_000

    struct RateLimit: Equatable { var pps: Int; var burst: Int }

    var vlan: Int?
    /// Sorted as given; unique, without the native `vlan`.
    var trunk: [Int]?
    /// SR-IOV CNI's spoofchk: the port may send only from the pod's MAC.
    var macSpoofCheck = false
    var maxMacs: Int?
    var rateLimit: RateLimit?

    init() {}

    init(_ object: JSONObject) throws(CNIError) {
        vlan = try integer(object, "vlan", Self.vlans)
        if let value = object["trunk"], !value.isNull {
            let message = "trunk must be a list of distinct VLAN ids from 1 to 4094"
            guard let items = value.arrayValue, items.count <= Self.vlans.count else { throw CNIError(.invalidNetworkConfig, message) }
            var ids: [Int] = []
            for item in items {
                guard let id = item.intValue, Self.vlans.contains(id) else { throw CNIError(.invalidNetworkConfig, message, details: String(item.rendered().prefix(64))) }
                ids.append(id)
            }
            guard Set(ids).count == ids.count else { throw CNIError(.invalidNetworkConfig, message, details: "a VLAN is listed twice") }
            if let vlan, ids.contains(vlan) {
                throw CNIError(.invalidNetworkConfig, "trunk must not list the native vlan \(vlan)", details: "vlan is carried untagged on a trunk port")
            }
            trunk = ids
        }
        if let value = object["macSpoofCheck"], !value.isNull {
            guard let flag = value.boolValue else { throw CNIError(.invalidNetworkConfig, "macSpoofCheck must be true or false") }
            macSpoofCheck = flag
        }
        maxMacs = try integer(object, "maxMacs", Self.maxMacsRange)
        if let value = object["rateLimit"], !value.isNull {
            guard let limit = value.objectValue else { throw CNIError(.invalidNetworkConfig, "rateLimit must be an object such as {\"pps\": 100000, \"burst\": 1000}") }
            if let key = limit.keys.first(where: { $0 != "pps" && $0 != "burst" }) {
                throw CNIError(.invalidNetworkConfig, "unknown field rateLimit.\(key)", details: "rateLimit takes pps and burst")
            }
            guard let pps = try integer(limit, "rateLimit.pps", Self.rateRange, key: "pps"),
                  let burst = try integer(limit, "rateLimit.burst", Self.rateRange, key: "burst") else {
                throw CNIError(.invalidNetworkConfig, "rateLimit needs both pps and burst")
            }
            rateLimit = RateLimit(pps: pps, burst: burst)
        }
    }

    /// Adds the daemon's keys to a POST /v1/ports body. `podMAC` is the MAC the port gets
    /// (configured, derived or from the runtime); macSpoofCheck allows only that one.
    func apply(to port: inout JSONObject, podMAC: String?) throws(CNIError) {
        if let vlan { port["vlan"] = .integer(vlan) }
        if let trunk { port["trunk"] = .array(trunk.map { .integer($0) }) }
        if macSpoofCheck {
            guard let podMAC else {
                throw CNIError(.invalidNetworkConfig, "macSpoofCheck needs the pod's MAC",
                               details: "set mac (a MAC or \"auto\"), or let the runtime pass one (the \"mac\" capability or CNI_ARGS MAC=)")
            }
            guard Naming.isUnicastMAC(podMAC) else {
                throw CNIError(.invalidNetworkConfig, "macSpoofCheck needs a unicast MAC", details: "\(podMAC) is a multicast address")
            }
            port["allowed_macs"] = .array([.string(podMAC)])
        }
        if let maxMacs { port["max_macs"] = .integer(maxMacs) }
        if let rateLimit { port["rate_limit"] = .object(["pps": .integer(rateLimit.pps), "burst": .integer(rateLimit.burst)]) }
    }

    /// CHECK: the configured keys the daemon's port shows differently (order and letter case
    /// aside: the daemon sorts trunk VLANs and writes MACs in lower case).
    func mismatches(_ port: JSONValue, podMAC: String?) -> [String] {
        var wanted = JSONObject()
        do { try apply(to: &wanted, podMAC: podMAC) } catch { return [error.message] }
        return wanted.keys.compactMap { key in
            guard let expected = wanted[key] else { return nil }
            let actual = port[key]
            if let actual, Self.canonical(actual) == Self.canonical(expected) { return nil }
            return "\(key) is \(actual?.rendered() ?? "unset"), expected \(expected.rendered())"
        }
    }

    private static func canonical(_ value: JSONValue) -> String {
        switch value {
        case .array(let items): return "[" + items.map(canonical).sorted().joined(separator: ",") + "]"
        case .object(let object): return "{" + object.keys.sorted().map { $0 + ":" + (object[$0].map(canonical) ?? "") }.joined(separator: ",") + "}"
        case .string(let text): return text.lowercased()
        default: return value.rendered()
        }
    }
}

/// An optional integer member of `object` within `range`; `name` is what messages call it.
func integer(_ object: JSONObject, _ name: String, _ range: ClosedRange<Int>, key: String? = nil) throws(CNIError) -> Int? {
    guard let value = object[key ?? name], !value.isNull else { return nil }
    guard let number = value.intValue, range.contains(number) else {
        throw CNIError(.invalidNetworkConfig, "\(name) must be an integer from \(range.lowerBound) to \(range.upperBound)", details: String(value.rendered().prefix(64)))
    }
    return number
}
