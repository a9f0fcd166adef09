import Dataplane

/// A PortSpec as JSON in the shape POST /v1/ports takes, so persisted state is read back
/// by `PortSpecDecoder` like any request.
public enum PortSpecEncoder {
    public static func encode(_ spec: PortSpec) -> JSON {
        var object: [String: JSON] = ["name": .string(spec.name), "type": .string(spec.kind.typeName)]
        switch spec.kind {
        case .afPacket(let interface):
            object["interface"] = .string(interface)
        case .afXdp(let xdp):
            object.merge(afXdpFields(xdp)) { _, xdp in xdp }
        case .vhostUser(let vhost):
            var socket: [String: JSON] = ["path": .string(vhost.socketPath), "mode": .string(vhost.mode.rawValue)]
            if let owner = vhost.owner { socket["owner"] = .string(owner) }
            if let group = vhost.group { socket["group"] = .string(group) }
            if let permissions = vhost.permissions { socket["permissions"] = .string(octal(permissions)) }
            object["socket"] = .object(socket)
            object["queues"] = .integer(Int64(vhost.queuePairs))
            if let mtu = vhost.mtu { object["mtu"] = .integer(Int64(mtu)) }
            if let mac = vhost.mac { object["mac"] = .string(mac) }
            var features: [String: JSON] = [:]
            if let mask = vhost.featureMask { features["mask"] = .string(hex(mask)) }
            if !vhost.enableFeatures.isEmpty { features["enable"] = .array(vhost.enableFeatures.map { .string($0) }) }
            if !vhost.disableFeatures.isEmpty { features["disable"] = .array(vhost.disableFeatures.map { .string($0) }) }
            if !features.isEmpty { object["features"] = .object(features) }
        }
        object.merge(PortPolicyEncoder.encode(spec.policy)) { _, policy in policy }
        return .object(object)
    }

    /// An af-xdp port's own keys (create body, GET, state file).
    static func afXdpFields(_ xdp: PortSpec.AfXdp) -> [String: JSON] {
        ["interface": .string(xdp.interface), "queue": .integer(Int64(xdp.queue)), "queues": .integer(Int64(xdp.queues)),
         "mode": .string(xdp.mode.rawValue)]
    }

    public static func hex(_ value: UInt64) -> String { "0x" + String(value, radix: 16) }

    public static func octal(_ value: UInt32) -> String {
        let digits = String(value, radix: 8)
        return String(repeating: "0", count: max(0, 4 - digits.count)) + digits
    }
}
