import Foundation

/// The REST side of segments and port security (issue 18) as tests use it: ports created with
/// policy keys (`vlan`, `trunk`, `allowed_macs`, `max_macs`, `rate_limit`, `storm_control`),
/// changed live with a JSON merge patch, and each port's counters flattened so a test can find
/// a drop counter by a word of its name.
extension SwitchAPIClient {
    /// POST /v1/ports with `port` (the same object as a config file entry, policy keys included).
    @discardableResult
    public func createPort(_ port: [String: Any]) throws -> Reply {
        try json("POST", "/v1/ports", port)
    }

    /// PATCH /v1/ports/{name} with a JSON merge patch (RFC 7396: NSNull resets a key), sent as
    /// application/json, the one body type the API takes (HTTPServer answers others with 415).
    @discardableResult
    public func patchPort(_ name: String, _ patch: [String: Any]) throws -> Reply {
        try json("PATCH", "/v1/ports/\(name)", patch)
    }

    /// Every port's counters from GET /v1/stats, flattened to dotted paths
    /// ("switch.tx_packets", "switch.drops.hairpin", "rx.packets", ...): port name to counters.
    public func portCounters() throws -> [String: PortCounterSet] {
        let reply = try expect("GET", "/v1/stats", status: [200])
        let ports = reply.object["ports"] as? [[String: Any]] ?? []
        var result: [String: PortCounterSet] = [:]
        for port in ports {
            guard let name = port["name"] as? String else { continue }
            result[name] = PortCounterSet(port: port)
        }
        return result
    }

    /// The MACs GET /v1/fdb shows learned on `port`.
    public func learnedMACs(port: String) throws -> [String] {
        try learnedEntries(port: port).map(\.mac)
    }

    /// What GET /v1/fdb shows learned on `port`: each MAC with its VLAN (nil: default segment).
    public func learnedEntries(port: String) throws -> [(mac: String, vlan: Int?)] {
        let reply = try expect("GET", "/v1/fdb", status: [200])
        let entries = reply.object["entries"] as? [[String: Any]] ?? []
        return entries.filter { $0["port"] as? String == port }.compactMap { entry in
            (entry["mac"] as? String).map { ($0.lowercased(), entry["vlan"] as? Int) }
        }
    }
}

/// One port's counters by dotted path.
public struct PortCounterSet: Sendable, CustomStringConvertible {
    public var values: [String: Int]

    /// The integer members of one port's object of GET /v1/stats, nested objects included
    /// (arrays, strings and booleans are left out).
    public init(port object: [String: Any]) {
        var values: [String: Int] = [:]
        Self.flatten(object, prefix: "", into: &values)
        self.values = values
    }

    public subscript(path: String) -> Int? { values[path] }

    /// The sum of the counters whose path contains "drops" and one of `words` (e.g. ["spoof"]):
    /// a drop cause found by a word of its name, so a renamed counter is a one-word change in
    /// the test; nil when no counter matches (the counter does not exist).
    public func drops(matching words: [String]) -> Int? {
        let matching = values.filter { path, _ in path.contains("drops") && words.contains { path.contains($0) } }
        return matching.isEmpty ? nil : matching.values.reduce(0, +)
    }

    public var description: String {
        values.sorted { $0.key < $1.key }.filter { $0.value != 0 }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
    }

    /// JSON true/false: Foundation makes them NSNumbers too, and `is Bool` holds for the
    /// numbers 0 and 1 as well; their type encoding ("c", a char) tells them apart.
    private static func isBoolean(_ number: NSNumber) -> Bool {
        String(cString: number.objCType) == "c"
    }

    private static func flatten(_ object: [String: Any], prefix: String, into values: inout [String: Int]) {
        for (key, value) in object {
            let path = prefix.isEmpty ? key : prefix + "." + key
            if let nested = value as? [String: Any] {
                flatten(nested, prefix: path, into: &values)
            } else if let number = value as? NSNumber, !isBoolean(number) {
                values[path] = number.intValue
            }
        }
    }
}
