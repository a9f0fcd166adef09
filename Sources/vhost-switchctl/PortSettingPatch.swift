import ManagementClient

/// `port set` arguments (KEY=VALUE ...) as the JSON merge patch (RFC 7396) that
/// PATCH /v1/ports/{name} takes: dotted keys are nested members, "none" is null (the key
/// goes back to its default). Each key's value has one syntax; the daemon checks ranges.
struct PortSettingPatch {
    enum Syntax {
        case integer             // max_macs=100
        case integerList         // trunk=10,20
        case macList             // allowed_macs=02:00:00:00:00:01,02:00:00:00:00:02
        case rate                // rate_limit=PPS/BURST
        case noneOnly            // storm_control=none
        case text                // rxq_affinity=0:1,1:0 (the daemon reads it)
    }

    struct Key {
        var name: String
        var syntax: Syntax
        /// "none" is allowed (a null in the patch).
        var resettable: Bool
    }

    static let keys: [Key] = [
        Key(name: "vlan", syntax: .integer, resettable: true),
        Key(name: "trunk", syntax: .integerList, resettable: true),
        Key(name: "allowed_macs", syntax: .macList, resettable: true),
        Key(name: "max_macs", syntax: .integer, resettable: true),
        Key(name: "rate_limit", syntax: .rate, resettable: true),
        Key(name: "rate_limit.pps", syntax: .integer, resettable: false),
        Key(name: "rate_limit.burst", syntax: .integer, resettable: false),
        Key(name: "storm_control", syntax: .noneOnly, resettable: true),
        Key(name: "storm_control.broadcast_pps", syntax: .integer, resettable: true),
        Key(name: "storm_control.multicast_pps", syntax: .integer, resettable: true),
        Key(name: "storm_control.unknown_unicast_pps", syntax: .integer, resettable: true),
        Key(name: "rxq_affinity", syntax: .text, resettable: true),
    ]

    struct Problem: Error, CustomStringConvertible {
        var description: String
        init(_ description: String) { self.description = description }
    }

    private(set) var patch = JSONObject()
    var json: JSONValue { .object(patch) }

    init(_ arguments: [String]) throws(Problem) {
        guard !arguments.isEmpty else { throw Problem("give at least one KEY=VALUE") }
        var given: [String] = []
        for argument in arguments {
            guard let equals = argument.firstIndex(of: "=") else { throw Problem("\"\(argument)\" is not KEY=VALUE") }
            let name = String(argument[..<equals])
            let text = String(argument[argument.index(after: equals)...])
            guard let key = Self.keys.first(where: { $0.name == name }) else {
                throw Problem("unknown key \"\(name)\"; known: \(Self.keys.map(\.name).joined(separator: ", "))")
            }
            // A key given twice, or a whole object and one of its members, is ambiguous.
            if let clash = given.first(where: { $0 == name || $0.hasPrefix(name + ".") || name.hasPrefix($0 + ".") }) {
                throw Problem(clash == name ? "\(name) is given twice" : "\(clash) and \(name) are both given")
            }
            given.append(name)
            let value: JSONValue
            do { value = try Self.value(text, key) } catch { throw Problem("\(name)=\(text): \(error)") }
            set(value, at: name.split(separator: ".").map(String.init))
        }
    }

    private mutating func set(_ value: JSONValue, at path: [String]) {
        guard path.count == 2 else { patch[path[0]] = value; return }
        var parent = patch[path[0]]?.objectValue ?? JSONObject()
        parent[path[1]] = value
        patch[path[0]] = .object(parent)
    }

    static func value(_ text: String, _ key: Key) throws(Problem) -> JSONValue {
        if text == "none" {
            guard key.resettable else { throw Problem("cannot be none (reset rate_limit as a whole)") }
            return .null
        }
        switch key.syntax {
        case .integer: return try integer(text)
        case .integerList: return try integerList(text)
        case .macList:
            let macs = text.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            guard !macs.contains(where: \.isEmpty) else { throw Problem("a comma-separated list of MACs, or none") }
            return .array(macs.map { .string($0) })
        case .rate:
            let parts = text.split(separator: "/", omittingEmptySubsequences: false)
            guard parts.count == 2 else { throw Problem("PPS/BURST (e.g. 10000/64), or none") }
            return .object(["pps": try integer(String(parts[0])), "burst": try integer(String(parts[1]))])
        case .noneOnly:
            throw Problem("only none; set its members with \(key.name).KEY=VALUE")
        case .text:
            return .string(text)
        }
    }

    static func integer(_ text: String) throws(Problem) -> JSONValue {
        guard let number = UInt64(text) else { throw Problem("\"\(text)\" is not a non-negative integer") }
        return .number(String(number))
    }

    /// "10,20" as [10, 20].
    static func integerList(_ text: String) throws(Problem) -> JSONValue {
        var items: [JSONValue] = []
        for part in text.split(separator: ",", omittingEmptySubsequences: false) { items.append(try integer(String(part))) }
        return .array(items)
    }
}
