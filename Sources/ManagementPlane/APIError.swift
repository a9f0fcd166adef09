/// Every error the API returns: an HTTP status and {"error": {"code", "message"}}.
public struct APIError: Error, Sendable, CustomStringConvertible {
    public enum Status: Int, Sendable {
        case badRequest = 400
        case unauthorized = 401
        case notFound = 404
        case methodNotAllowed = 405
        case notAcceptable = 406
        case conflict = 409
        case payloadTooLarge = 413
        case unsupportedMediaType = 415
        case misdirectedRequest = 421
        case unprocessable = 422
        case tooManyRequests = 429
        case internalError = 500
        case notImplemented = 501
        case unavailable = 503
    }

    /// Machine-readable, snake_case; the OpenAPI's Error.code enum lists exactly these
    /// (ManagementPlaneTests.OpenAPIContractTests).
    public enum Code: String, Sendable, CaseIterable {
        case bodyTooLarge = "body_too_large"
        case immutableField = "immutable_field"
        case invalidBody = "invalid_body"
        case invalidEventType = "invalid_event_type"
        case invalidHost = "invalid_host"
        case invalidJson = "invalid_json"
        case invalidLogLevel = "invalid_log_level"
        case invalidMac = "invalid_mac"
        case invalidMask = "invalid_mask"
        case invalidPolicy = "invalid_policy"
        case invalidPort = "invalid_port"
        case invalidSince = "invalid_since"
        case invalidVringIndex = "invalid_vring_index"
        case macNotFound = "mac_not_found"
        case methodNotAllowed = "method_not_allowed"
        case notFound = "not_found"
        case notVhostUser = "not_vhost_user"
        case portExists = "port_exists"
        case portFailed = "port_failed"
        case portNotFound = "port_not_found"
        case tooManyEventStreams = "too_many_event_streams"
        case unauthorized
        case unknownFeature = "unknown_feature"
        case unknownField = "unknown_field"
        case unsupported
        case unsupportedFeatures = "unsupported_features"
        case unsupportedMediaType = "unsupported_media_type"
        case vringNotFound = "vring_not_found"
    }

    public var status: Status
    public var code: Code
    public var message: String
    public var extraHeaders: [(String, String)]

    public init(_ status: Status, _ code: Code, _ message: String, headers: [(String, String)] = []) {
        self.status = status
        self.code = code
        self.message = message
        self.extraHeaders = headers
    }

    public var json: JSON { ["error": ["code": .string(code.rawValue), "message": .string(message)]] }
    public var description: String { "\(status.rawValue) \(code.rawValue): \(message)" }

}
