import Dataplane

/// A port's policy as JSON members, in one shape wherever the daemon writes a port (GET,
/// the state file, the target of a PATCH merge): all seven keys, always. A setting that is
/// off is null (`vlan`, `allowed_macs`, `rate_limit`, `storm_control` and each storm
/// limit, `rxq_affinity`), `trunk` is a list (empty: none), `max_macs` a number. `PortPolicyDecoder` reads
/// it back.
public enum PortPolicyEncoder {
    public static func encode(_ policy: PortPolicy) -> [String: JSON] {
        [
            "vlan": optional(policy.vlan.map(UInt64.init)),
            "trunk": .array(policy.trunk.map { .integer(Int64($0)) }),
            "allowed_macs": policy.allowedMACs.map { macs in .array(macs.map { .string(MacAddress.format($0)) }) } ?? .null,
            "max_macs": .integer(Int64(policy.maxMACs)),
            "rate_limit": policy.rateLimit.map { limit in
                ["pps": .integer(Int64(clamping: limit.pps)), "burst": .integer(Int64(clamping: limit.burst))]
            } ?? .null,
            "storm_control": policy.stormControl.map { storm in
                [
                    "broadcast_pps": optional(storm.broadcastPPS),
                    "multicast_pps": optional(storm.multicastPPS),
                    "unknown_unicast_pps": optional(storm.unknownUnicastPPS),
                ]
            } ?? .null,
            "rxq_affinity": policy.rxqAffinity.isEmpty ? .null
                : .string(policy.rxqAffinity.sorted { $0.key < $1.key }.map { "\($0.key):\($0.value)" }.joined(separator: ",")),
        ]
    }

    private static func optional(_ value: UInt64?) -> JSON { value.map { .integer(Int64(clamping: $0)) } ?? .null }
}
