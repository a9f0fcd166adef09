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
        case unprocessable = 422
        case internalError = 500
        case notImplemented = 501
        case unavailable = 503
    }

    public var status: Status
    /// Machine-readable, snake_case: "port_exists", "invalid_json", ...
    public var code: String
    public var message: String
    public var extraHeaders: [(String, String)]

    public init(_ status: Status, _ code: String, _ message: String, headers: [(String, String)] = []) {
        self.status = status
        self.code = code
        self.message = message
        self.extraHeaders = headers
    }

    public var json: JSON { ["error": ["code": .string(code), "message": .string(message)]] }
    public var description: String { "\(status.rawValue) \(code): \(message)" }

}
