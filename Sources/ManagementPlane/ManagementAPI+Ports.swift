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
        return .object(object)
    }
}
