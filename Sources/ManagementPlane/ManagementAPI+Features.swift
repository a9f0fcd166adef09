import PortService
import VhostUser
import Virtio

/// /v1/ports/{name}/features: the bodies are read here; the mask arithmetic and the change
/// itself are `FeatureOffer` and `PortService.changeOfferedFeatures`.
extension ManagementAPI {
    static func featureSet(_ mask: UInt64) -> JSON {
        ["mask": .string(PortSpecEncoder.hex(mask)), "names": .array(FeatureNames.names(of: mask).map { .string($0) })]
    }

    static func protocolFeatureSet(_ mask: UInt64) -> JSON {
        ["mask": .string(PortSpecEncoder.hex(mask)), "names": .array(VhostUserProtocolFeature.names(of: mask).map { .string($0) })]
    }

    static func featuresJSON(_ features: FeaturesView) -> [String: JSON] {
        [
            "supported": featureSet(features.supported),
            "offered": featureSet(features.offered),
            "negotiated": features.negotiated.map(featureSet) ?? .null,
            "protocol": [
                "offered": protocolFeatureSet(features.offeredProtocol),
                "negotiated": features.negotiatedProtocol.map(protocolFeatureSet) ?? .null,
            ],
        ]
    }

    func getFeatures(_ name: String) throws(APIError) -> HTTPResponse {
        do { return .json(.object(Self.featuresJSON(try service.features(port: name)))) } catch { throw APIError(error) }
    }

    func putFeatures(_ name: String, _ request: HTTPRequest) throws(APIError) -> HTTPResponse {
        try requireVhostUser(name)
        guard let body = try request.jsonBody().objectValue else {
            throw APIError(.badRequest, .invalidBody, "the body must be an object {\"mask\": \"0x...\"}")
        }
        try Self.rejectUnknown(body, allowed: ["mask"])
        guard let text = body["mask"]?.stringValue else { throw APIError(.badRequest, .invalidBody, "mask is required (a hex string)") }
        guard let mask = PortSpecDecoder.parseMask(text) else {
            throw APIError(.badRequest, .invalidMask, "mask must be a hex string such as \"0x140000000\"")
        }
        return try changeFeatures(name, .mask(mask))
    }

    func patchFeatures(_ name: String, _ request: HTTPRequest) throws(APIError) -> HTTPResponse {
        try requireVhostUser(name)
        guard let body = try request.jsonBody().objectValue else {
            throw APIError(.badRequest, .invalidBody, "the body must be an object {\"enable\": [...], \"disable\": [...]}")
        }
        try Self.rejectUnknown(body, allowed: ["enable", "disable"])
        var lists: [String: [String]] = [:]
        for key in ["enable", "disable"] {
            guard let value = body[key] else { continue }
            guard let items = value.arrayValue else { throw APIError(.badRequest, .invalidBody, "\(key) must be a list of feature names") }
            var names: [String] = []
            for item in items {
                guard let featureName = item.stringValue else { throw APIError(.badRequest, .invalidBody, "\(key) must contain only strings") }
                names.append(featureName)
            }
            lists[key] = names
        }
        return try changeFeatures(name, .names(enable: lists["enable"] ?? [], disable: lists["disable"] ?? []))
    }

    /// The path names a vhost-user port: checked before the body, as the 404 comes first.
    private func requireVhostUser(_ name: String) throws(APIError) {
        do { try service.requireVhostUser(port: name) } catch { throw APIError(error) }
    }

    private func changeFeatures(_ name: String, _ change: FeatureOffer.Change) throws(APIError) -> HTTPResponse {
        let update: FeatureUpdate
        do { update = try service.changeOfferedFeatures(port: name, change) } catch {
            switch error {
            case .lookup(let lookup): throw APIError(lookup)
            case .invalid(.unknownFeature(let featureName)):
                throw APIError(.badRequest, .unknownFeature, "unknown feature \"\(RouterText.printable(featureName))\"")
            case .invalid(let problem):
                throw APIError(.badRequest, .unsupportedFeatures, problem.description)
            }
        }
        var object = Self.featuresJSON(update.features)
        object["applies"] = .string(update.appliesNow ? "now" : "next_session")
        object["message"] = .string(update.appliesNow
            ? "the next front-end to connect is offered these features"
            : "a session is running with the features it negotiated; the new offer applies from the next session")
        return .json(.object(object))
    }
}
