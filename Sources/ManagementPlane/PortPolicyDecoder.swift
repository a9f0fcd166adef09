import Dataplane
import PortService

/// Reads a port's policy keys (`vlan`, `trunk`, `allowed_macs`, `max_macs`, `rate_limit`,
/// `storm_control`, `rxq_affinity`) from a port's JSON object, for both port types: the create body, the
/// config file, the persisted state and the result of a PATCH merge. Other keys are the
/// caller's. A key left out or null takes its default; wrong types and unknown members of
/// the two objects are refused naming the field, and `PortPolicy.problem` gives the rules
/// that span fields (ranges, duplicates, the native VLAN, the MAC limits).
public enum PortPolicyDecoder {
    public typealias DecodingError = PortSpecDecoder.DecodingError

    /// `defaults` is the port type's default policy (`PortPolicy(defaultFor:)`).
    public static func decode(_ object: [String: JSON], defaults: PortPolicy = PortPolicy()) throws(DecodingError) -> PortPolicy {
        var policy = defaults
        if let vlan = present(object["vlan"]) { policy.vlan = try vlanID(vlan, "vlan must be an integer from 1 to 4094") }
        if let items = try list(object, "trunk", "trunk must be a list of VLAN ids (integers from 1 to 4094)") {
            var trunk: [UInt16] = []
            for item in items { trunk.append(try vlanID(item, "trunk must contain only integers from 1 to 4094")) }
            policy.trunk = trunk.sorted()
        }
        if let items = try list(object, "allowed_macs", "allowed_macs must be a list of MACs such as \"02:00:00:00:00:01\"") {
            var macs: [UInt64] = []
            var seen = Set<UInt64>()
            for item in items {
                guard let text = item.stringValue, let mac = MacAddress.parse(text) else {
                    throw DecodingError("allowed_macs must contain only MACs such as \"02:00:00:00:00:01\"")
                }
                if seen.insert(mac).inserted { macs.append(mac) }
            }
            policy.allowedMACs = macs
        }
        if let maxMACs = try integer(object["max_macs"], "max_macs", atLeast: 1, atMost: Int64(PortPolicy.maxMaxMACs)) {
            policy.maxMACs = Int(maxMACs)
        }
        if let limit = try members(object, "rate_limit", allowed: ["pps", "burst"]) {
            guard let pps = try integer(limit["pps"], "rate_limit.pps", atLeast: 1) else { throw DecodingError("rate_limit.pps is required") }
            guard let burst = try integer(limit["burst"], "rate_limit.burst", atLeast: 1) else { throw DecodingError("rate_limit.burst is required") }
            policy.rateLimit = PortPolicy.RateLimit(pps: UInt64(pps), burst: UInt64(burst))
        }
        if let storm = try members(object, "storm_control", allowed: ["broadcast_pps", "multicast_pps", "unknown_unicast_pps"]) {
            let control = PortPolicy.StormControl(
                broadcastPPS: try integer(storm["broadcast_pps"], "storm_control.broadcast_pps", atLeast: 0).map(UInt64.init),
                multicastPPS: try integer(storm["multicast_pps"], "storm_control.multicast_pps", atLeast: 0).map(UInt64.init),
                unknownUnicastPPS: try integer(storm["unknown_unicast_pps"], "storm_control.unknown_unicast_pps", atLeast: 0).map(UInt64.init))
            // An object without limits is no storm control: one way to say it.
            policy.stormControl = control.isEmpty ? nil : control
        }
        if let affinity = present(object["rxq_affinity"]) { policy.rxqAffinity = try rxqAffinity(affinity) }
        if let problem = policy.problem { throw DecodingError(problem) }
        return policy
    }

    static let rxqAffinityMessage = "rxq_affinity must be a string of queue:thread pairs such as \"0:1,1:0\", each queue once"

    /// OVS's pmd-rxq-affinity syntax: "queue:thread,queue:thread" (decimal, no spaces).
    private static func rxqAffinity(_ value: JSON) throws(DecodingError) -> [Int: Int] {
        // At most one pair per queue: "127:63," is 7 bytes.
        guard let text = value.stringValue, text.utf8.count <= 8 * PortSpec.maxQueuePairs else {
            throw DecodingError(rxqAffinityMessage)
        }
        var pins: [Int: Int] = [:]
        if text.isEmpty { return pins }
        for pair in text.split(separator: ",", omittingEmptySubsequences: false) {
            let parts = pair.split(separator: ":", omittingEmptySubsequences: false)
            guard parts.count == 2, let queue = decimal(parts[0]), let thread = decimal(parts[1]), pins[queue] == nil else {
                throw DecodingError(rxqAffinityMessage)
            }
            pins[queue] = thread
        }
        return pins
    }

    /// A short run of ASCII digits as a number (no sign, no spaces).
    private static func decimal(_ text: Substring) -> Int? {
        guard (1...4).contains(text.utf8.count), text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
        return Int(text)
    }

    /// nil for a missing value and for null (the default).
    private static func present(_ value: JSON?) -> JSON? {
        guard let value, value != .null else { return nil }
        return value
    }

    private static func vlanID(_ value: JSON, _ message: String) throws(DecodingError) -> UInt16 {
        guard let number = value.integerValue, number >= 1, number <= Int64(PortPolicy.validVLANs.upperBound) else {
            throw DecodingError(message)
        }
        return UInt16(number)
    }

    /// An integer in range, or nil for null and a missing value.
    private static func integer(_ value: JSON?, _ field: String, atLeast minimum: Int64,
                                atMost maximum: Int64 = .max) throws(DecodingError) -> Int64? {
        guard let value = present(value) else { return nil }
        guard let number = value.integerValue, number >= minimum, number <= maximum else {
            let range = maximum == .max ? "of at least \(minimum)" : "from \(minimum) to \(maximum)"
            throw DecodingError("\(field) must be an integer \(range)")
        }
        return number
    }

    private static func list(_ object: [String: JSON], _ key: String, _ message: String) throws(DecodingError) -> [JSON]? {
        guard let value = present(object[key]) else { return nil }
        guard let items = value.arrayValue else { throw DecodingError(message) }
        return items
    }

    private static func members(_ object: [String: JSON], _ key: String, allowed: Set<String>) throws(DecodingError) -> [String: JSON]? {
        guard let value = present(object[key]) else { return nil }
        guard let members = value.objectValue else {
            throw DecodingError("\(key) must be an object with \(allowed.sorted().joined(separator: ", ")), or null")
        }
        try PortSpecDecoder.rejectUnknown(members, allowed: allowed, in: key)
        return members
    }
}
