/// What a handler answers: a complete body, or an event stream kept open.
public struct HTTPResponse: Sendable {
    public enum Body: Sendable {
        case bytes([UInt8])
        case stream(EventStream)
    }

    public var status: Int
    public var headers: [(String, String)]
    public var body: Body

    public init(status: Int, headers: [(String, String)] = [], body: Body = .bytes([])) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// A JSON document (pretty for humans using curl would be nice, but compact keeps
    /// responses small; `jq` is the tool for reading them).
    public static func json(_ value: JSON, status: Int = 200) -> HTTPResponse {
        HTTPResponse(status: status, headers: [("Content-Type", "application/json")], body: .bytes(Array((value.rendered() + "\n").utf8)))
    }

    public static func noContent() -> HTTPResponse { HTTPResponse(status: 204) }

    public static func text(_ text: String, contentType: String, status: Int = 200) -> HTTPResponse {
        HTTPResponse(status: status, headers: [("Content-Type", contentType)], body: .bytes(Array(text.utf8)))
    }

    public static func error(_ error: APIError) -> HTTPResponse {
        var response = json(error.json, status: error.status.rawValue)
        response.headers.append(contentsOf: error.extraHeaders)
        return response
    }

    public func header(_ name: String) -> String? {
        headers.first { $0.0.lowercased() == name.lowercased() }?.1
    }
}
