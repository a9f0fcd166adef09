import Dataplane
import PortService

/// /v1/ports and /v1/ports/{name}.
extension ManagementAPI {
    func listPorts() throws(APIError) -> HTTPResponse {
        .json(["ports": .array(service.portViews.map(Self.portJSON) + pendingPortsJSON)])
    }

    func getPort(_ name: String) throws(APIError) -> HTTPResponse {
        guard let port = service.port(named: name) else {
            if let pending = pendingPortJSON(named: name) { return .json(pending) }
            throw APIError(PortLookupError.noPort(name))
        }
        return .json(Self.portJSON(port))
    }

    func createPort(_ request: HTTPRequest) throws(APIError) -> HTTPResponse {
        let body = try request.jsonBody()
        let spec: PortSpec
        do { spec = try PortSpecDecoder.decode(body) } catch {
            throw APIError(.badRequest, .invalidPort, error.message)
        }
        let port: PortView
        do { port = try service.create(spec) } catch { throw APIError(error) }
        var response = HTTPResponse.json(Self.portJSON(port), status: 201)
        response.headers.append(("Location", "/v1/ports/\(spec.name)"))
        return response
    }

    /// PATCH /v1/ports/{name}: a JSON merge patch (RFC 7396) of the port's policy keys,
    /// applied to the live port without touching its device or socket. Any other key is
    /// refused, as is a result the policy rules refuse; either way nothing changes.
    func patchPort(_ name: String, _ request: HTTPRequest) throws(APIError) -> HTTPResponse {
        // The path names a port: checked before the body, as the 404 comes first.
        guard service.port(named: name) != nil else { throw APIError(PortLookupError.noPort(name)) }
        guard let patch = try request.jsonBody().objectValue else {
            throw APIError(.badRequest, .invalidBody, "the body must be a JSON merge patch object, such as {\"vlan\": 10}")
        }
        try Self.rejectFixedKeys(patch)
        let port: PortView
        do throws(PortService.PortError) {
            port = try service.changePolicy(port: name) { current, kind throws(PortService.PortError) in
                try Self.merge(patch, into: current, defaults: PortPolicy(defaultFor: kind))
            }
        } catch {
            throw error.code == .invalid ? APIError(.badRequest, .invalidPolicy, error.message) : APIError(error)
        }
        return .json(Self.portJSON(port))
    }

    /// The policy the patch makes of `current`: merged as JSON, read back like a create body.
    static func merge(_ patch: [String: JSON], into current: PortPolicy, defaults: PortPolicy = PortPolicy()) throws(PortService.PortError) -> PortPolicy {
        let merged = JSONMergePatch.apply(.object(patch), to: .object(PortPolicyEncoder.encode(current)))
        do throws(PortPolicyDecoder.DecodingError) {
            return try PortPolicyDecoder.decode(merged.objectValue ?? [:], defaults: defaults)
        } catch {
            throw PortService.PortError(.invalid, error.message)
        }
    }

    /// A port's other settings make its device or socket, so they are fixed for its lifetime
    /// (`id` and `state` are the switch's; the offered features have their own resource).
    private static func rejectFixedKeys(_ patch: [String: JSON]) throws(APIError) {
        guard let key = patch.keys.sorted().first(where: { !PortPolicyField.names.contains($0) }) else { return }
        if key == "features" {
            throw APIError(.badRequest, .immutableField, "features are changed with PUT or PATCH /v1/ports/{name}/features")
        }
        if PortSpecDecoder.vhostUserKeys.union(PortSpecDecoder.afPacketKeys).union(PortSpecDecoder.afXdpKeys).union(["id", "state"]).contains(key) {
            throw APIError(.badRequest, .immutableField, "\(key) cannot be changed on a live port; delete and create the port")
        }
        throw APIError(.badRequest, .unknownField,
                       "unknown field \"\(RouterText.printable(key))\"; a PATCH may change only "
                       + PortPolicyField.allCases.map(\.rawValue).joined(separator: ", "))
    }

    func deletePort(_ name: String) throws(APIError) -> HTTPResponse {
        do { try service.delete(name: name) } catch { throw APIError(error) }
        return .noContent()
    }

    static func portJSON(_ port: PortView) -> JSON {
        var object: [String: JSON] = [
            "name": .string(port.spec.name),
            "type": .string(port.spec.kind.typeName),
            "id": .integer(Int64(port.id)),
        ]
        switch port.spec.kind {
        case .afPacket(let interface):
            object["interface"] = .string(interface)
        case .afXdp(let xdp):
            object.merge(PortSpecEncoder.afXdpFields(xdp)) { _, xdp in xdp }
            object["xdp"] = port.xdp.map { ["attached_mode": .string($0.mode.rawValue), "zero_copy": .bool($0.zeroCopy)] } ?? .null
        case .vhostUser(let vhost):
            var socket: [String: JSON] = [
                "path": .string(vhost.socketPath),
                "absolute_path": port.socketPath.map { .string($0) } ?? .null,
                "mode": .string(vhost.mode.rawValue),
                "owner": vhost.owner.map { .string($0) } ?? .null,
                "group": vhost.group.map { .string($0) } ?? .null,
                "permissions": vhost.permissions.map { .string(PortSpecEncoder.octal($0)) } ?? .null,
            ]
            if vhost.mode == .client { socket["owner"] = .null; socket["group"] = .null }
            object["socket"] = .object(socket)
            object["queues"] = .integer(Int64(vhost.queuePairs))
            object["mtu"] = vhost.mtu.map { .integer(Int64($0)) } ?? .null
            object["mac"] = vhost.mac.map { .string($0) } ?? .null
            if let device = port.device {
                object["state"] = .string(device.state.rawValue)
                object["features"] = ["offered": featureSet(device.offeredFeatures)]
            }
        }
        object.merge(PortPolicyEncoder.encode(port.spec.policy)) { _, policy in policy }
        return .object(object)
    }
}
