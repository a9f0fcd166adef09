import Dataplane
import PortService
import VhostSystem

/// Turns a port's JSON (config file entry, POST /v1/ports body, persisted state) into a
/// PortSpec, refusing unknown fields and wrong types with a message naming the field.
public enum PortSpecDecoder {
    public struct DecodingError: Error, Equatable, CustomStringConvertible {
        public var message: String
        public var description: String { message }
        init(_ message: String) { self.message = message }
    }

    public static func decode(_ json: JSON) throws(DecodingError) -> PortSpec {
        guard let object = json.objectValue else { throw DecodingError("a port must be a JSON object") }
        let name = try requiredString(object, "name")
        if let problem = PortSpec.validateName(name) { throw DecodingError(problem) }
        let type = try requiredString(object, "type")
        var spec: PortSpec
        switch type {
        case "vhost-user":
            try rejectUnknown(object, allowed: vhostUserKeys.union(PortPolicyField.names), in: "port")
            spec = PortSpec(name: name, kind: .vhostUser(try decodeVhostUser(object)))
        case "af-packet":
            try rejectUnknown(object, allowed: afPacketKeys.union(PortPolicyField.names), in: "port")
            spec = PortSpec(name: name, kind: .afPacket(interface: try interfaceName(object)))
        case "af-xdp":
            try rejectUnknown(object, allowed: afXdpKeys.union(PortPolicyField.names), in: "port")
            spec = PortSpec(name: name, kind: .afXdp(try decodeAfXdp(object)))
        default:
            throw DecodingError("type must be \"vhost-user\", \"af-packet\" or \"af-xdp\", not \"\(type)\"")
        }
        spec.policy = try PortPolicyDecoder.decode(object, defaults: PortPolicy(defaultFor: spec.kind))
        return spec
    }

    /// The keys of each port type besides the policy's (which both types take).
    public static let vhostUserKeys: Set<String> = ["name", "type", "socket", "queues", "mtu", "mac", "features"]
    public static let afPacketKeys: Set<String> = ["name", "type", "interface"]
    public static let afXdpKeys: Set<String> = ["name", "type", "interface", "queue", "queues", "mode"]

    /// A kernel port's `interface`: a Linux interface name.
    private static func interfaceName(_ object: [String: JSON]) throws(DecodingError) -> String {
        let interface = try requiredString(object, "interface")
        if let problem = PortSpec.validateInterfaceName(interface) { throw DecodingError(problem) }
        return interface
    }

    private static func decodeAfXdp(_ object: [String: JSON]) throws(DecodingError) -> PortSpec.AfXdp {
        var spec = PortSpec.AfXdp(interface: try interfaceName(object))
        if let queue = object["queue"] {
            let range = PortSpec.AfXdp.queueRange
            guard let value = queue.integerValue, value >= Int64(range.lowerBound), value <= Int64(range.upperBound) else {
                throw DecodingError("queue must be an integer from \(range.lowerBound) to \(range.upperBound)")
            }
            spec.queue = Int(value)
        }
        if let queues = object["queues"] {
            let range = PortSpec.AfXdp.queueCountRange
            guard let value = queues.integerValue, value >= Int64(range.lowerBound), value <= Int64(range.upperBound) else {
                throw DecodingError("queues must be an integer from \(range.lowerBound) to \(range.upperBound)")
            }
            spec.queues = Int(value)
        }
        if let mode = try optionalString(object, "mode") {
            guard let parsed = XDPSocket.AttachMode(rawValue: mode) else {
                throw DecodingError("mode must be \"native\", \"generic\" or \"auto\"")
            }
            spec.mode = parsed
        }
        return spec
    }

    private static func decodeVhostUser(_ object: [String: JSON]) throws(DecodingError) -> PortSpec.VhostUser {
        guard let socketJSON = object["socket"] else { throw DecodingError("socket is required for a vhost-user port") }
        guard let socket = socketJSON.objectValue else { throw DecodingError("socket must be an object") }
        try rejectUnknown(socket, allowed: ["path", "mode", "owner", "group", "permissions"], in: "socket")
        var spec = PortSpec.VhostUser(socketPath: try requiredString(socket, "path", prefix: "socket."))
        if let mode = try optionalString(socket, "mode", prefix: "socket.") {
            guard let parsed = PortSpec.SocketMode(rawValue: mode) else { throw DecodingError("socket.mode must be \"server\" or \"client\"") }
            spec.mode = parsed
        }
        spec.owner = try optionalString(socket, "owner", prefix: "socket.")
        spec.group = try optionalString(socket, "group", prefix: "socket.")
        if let permissions = socket["permissions"] {
            switch permissions {
            case .string(let text):
                guard let value = parsePermissions(text) else {
                    throw DecodingError("socket.permissions must be an octal mode such as \"0660\"")
                }
                spec.permissions = value
            default:  // a number would be read in decimal by some and octal by others: only text
                throw DecodingError("socket.permissions must be an octal string such as \"0660\"")
            }
        }
        if let queues = object["queues"] {
            guard let value = queues.integerValue, value >= 1, value <= Int64(PortSpec.maxQueuePairs) else {
                throw DecodingError("queues must be an integer from 1 to \(PortSpec.maxQueuePairs)")
            }
            spec.queuePairs = Int(value)
        }
        if let mtu = object["mtu"] {
            let range = PortSpec.mtuRange
            guard let value = mtu.integerValue, value >= Int64(range.lowerBound), value <= Int64(range.upperBound) else {
                throw DecodingError("mtu must be an integer from \(range.lowerBound) to \(range.upperBound)")
            }
            spec.mtu = Int(value)
        }
        if let mac = try optionalString(object, "mac") {
            guard MacAddress.parse(mac) != nil else { throw DecodingError("mac must look like 02:00:00:00:00:01") }
            spec.mac = mac.lowercased()
        }
        if let features = object["features"] {
            guard let members = features.objectValue else { throw DecodingError("features must be an object with \"enable\" and/or \"disable\" lists") }
            try rejectUnknown(members, allowed: ["enable", "disable", "mask"], in: "features")
            if let mask = members["mask"] {
                guard let text = mask.stringValue, let value = parseMask(text) else {
                    throw DecodingError("features.mask must be a hex string such as \"0x140000000\"")
                }
                spec.featureMask = value
            }
            spec.enableFeatures = try stringList(members, "enable", prefix: "features.")
            spec.disableFeatures = try stringList(members, "disable", prefix: "features.")
        }
        return spec
    }

    /// An octal file mode of up to three digits, optionally after "0o" and one leading "0"
    /// ("660", "0660", "0o660"); no sign, no further zeros.
    public static func parsePermissions(_ text: String) -> UInt32? {
        var digits = Substring(text)
        if digits.hasPrefix("0o") { digits = digits.dropFirst(2) }
        if digits.utf8.count == 4, digits.hasPrefix("0") { digits = digits.dropFirst() }
        guard (1...3).contains(digits.utf8.count), digits.utf8.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "7")).contains($0) }) else {
            return nil
        }
        return UInt32(digits, radix: 8)
    }

    /// "0x1f" (or plain hex digits), at most 64 bits.
    public static func parseMask(_ text: String) -> UInt64? {
        var digits = Substring(text)
        if digits.hasPrefix("0x") || digits.hasPrefix("0X") { digits = digits.dropFirst(2) }
        guard !digits.isEmpty, digits.count <= 16, digits.allSatisfy({ $0.isHexDigit }) else { return nil }
        return UInt64(digits, radix: 16)
    }

    static func rejectUnknown(_ object: [String: JSON], allowed: Set<String>, in context: String) throws(DecodingError) {
        if let unknown = object.keys.sorted().first(where: { !allowed.contains($0) }) {
            throw DecodingError("unknown field \"\(unknown)\" in \(context)")
        }
    }

    static func requiredString(_ object: [String: JSON], _ key: String, prefix: String = "") throws(DecodingError) -> String {
        guard let value = object[key] else { throw DecodingError("\(prefix)\(key) is required") }
        guard let text = value.stringValue else { throw DecodingError("\(prefix)\(key) must be a string") }
        return text
    }

    /// A key that may be left out; when there, a string (null is not "left out": the
    /// description has no null for these keys, and the state file never writes one).
    static func optionalString(_ object: [String: JSON], _ key: String, prefix: String = "") throws(DecodingError) -> String? {
        guard let value = object[key] else { return nil }
        guard let text = value.stringValue else { throw DecodingError("\(prefix)\(key) must be a string") }
        return text
    }

    static func stringList(_ object: [String: JSON], _ key: String, prefix: String) throws(DecodingError) -> [String] {
        guard let value = object[key] else { return [] }
        guard let items = value.arrayValue else { throw DecodingError("\(prefix)\(key) must be a list of feature names") }
        var result: [String] = []
        for item in items {
            guard let text = item.stringValue else { throw DecodingError("\(prefix)\(key) must contain only strings") }
            result.append(text)
        }
        return result
    }
}
