/// One HTTP request as the router and handlers see it: decoded once by `HTTPServer`,
/// with the body already complete and within the size cap.
public struct HTTPRequest: Sendable {
    public enum Transport: String, Sendable { case unix, tcp }

    public var method: String
    /// The path without the query string (libmicrohttpd has already percent-decoded it).
    public var path: String
    public var query: [String: String]
    /// Header names lowercased.
    public var headers: [String: String]
    public var body: [UInt8]
    public var transport: Transport

    public init(method: String, path: String, query: [String: String] = [:], headers: [String: String] = [:],
                body: [UInt8] = [], transport: Transport = .unix) {
        self.method = method
        self.path = path
        self.query = query
        var lowered: [String: String] = [:]
        for (name, value) in headers { lowered[name.lowercased()] = value }
        self.headers = lowered
        self.body = body
        self.transport = transport
    }

    public func header(_ name: String) -> String? { headers[name.lowercased()] }

    /// True when the client prefers a JSON document over an event stream (GET /v1/events).
    public var acceptsJSONOnly: Bool {
        guard let accept = header("accept")?.lowercased() else { return false }
        return accept.contains("application/json") && !accept.contains("text/event-stream")
    }

    /// The body as JSON (nil body is an error: every body-taking route needs one).
    public func jsonBody() throws(APIError) -> JSON {
        if body.isEmpty { throw APIError(.badRequest, .invalidBody, "a JSON request body is required") }
        do { return try JSON.parse(body) } catch { throw APIError(.badRequest, .invalidJson, error.message) }
    }
}
