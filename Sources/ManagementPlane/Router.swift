/// Maps method + path onto handlers. Patterns are literal segments and `{name}`
/// parameters ("/v1/ports/{name}/vrings/{index}"). A path no pattern matches is a 404; a
/// path that matches with another method is a 405 with an Allow header.
public struct Router<Context>: Sendable {
    public typealias Handler = @Sendable (Context, HTTPRequest, RouteParameters) throws(APIError) -> HTTPResponse

    public struct RouteParameters: Sendable {
        public var values: [String: String]
        public subscript(name: String) -> String { values[name] ?? "" }
    }

    private enum Segment: Sendable, Equatable {
        case literal(String)
        case parameter(String)
    }

    private struct Route: Sendable {
        var method: String
        var pattern: String
        var segments: [Segment]
        var handler: Handler
    }

    private var routes: [Route] = []

    public init() {}

    public mutating func add(_ method: String, _ pattern: String, _ handler: @escaping Handler) {
        let segments = pattern.split(separator: "/").map { part -> Segment in
            part.hasPrefix("{") && part.hasSuffix("}") ? .parameter(String(part.dropFirst().dropLast())) : .literal(String(part))
        }
        routes.append(Route(method: method, pattern: pattern, segments: segments, handler: handler))
    }

    /// Every (method, pattern) pair, for documentation checks in tests.
    public var table: [(method: String, pattern: String)] { routes.map { ($0.method, $0.pattern) } }

    private static func match(_ segments: [Segment], _ path: [Substring]) -> [String: String]? {
        guard segments.count == path.count else { return nil }
        var values: [String: String] = [:]
        for (segment, part) in zip(segments, path) {
            switch segment {
            case .literal(let text): if text != part { return nil }
            case .parameter(let name):
                if part.isEmpty { return nil }
                values[name] = String(part)
            }
        }
        return values
    }

    public func route(_ request: HTTPRequest, context: Context) -> HTTPResponse {
        guard request.path.hasPrefix("/") else { return .error(APIError(.notFound, .notFound, "no such resource")) }
        let parts = request.path.dropFirst().split(separator: "/", omittingEmptySubsequences: false)
        let method = request.method == "HEAD" ? "GET" : request.method
        var allowed: [String] = []
        for route in routes {
            guard let values = Self.match(route.segments, parts) else { continue }
            if route.method == method {
                do {
                    return try route.handler(context, request, RouteParameters(values: values))
                } catch {
                    return .error(error)
                }
            }
            allowed.append(route.method)
        }
        if allowed.isEmpty {
            return .error(APIError(.notFound, .notFound, "no resource at \(RouterText.printable(request.path))"))
        }
        if allowed.contains("GET") { allowed.append("HEAD") }
        let allow = Array(Set(allowed)).sorted().joined(separator: ", ")
        return .error(APIError(.methodNotAllowed, .methodNotAllowed,
                               "\(RouterText.printable(request.method)) is not allowed on \(RouterText.printable(request.path)); allowed: \(allow)",
                               headers: [("Allow", allow)]))
    }

}

enum RouterText {
    /// Request text echoed in messages: control characters escaped, length capped.
    static func printable(_ text: String) -> String {
        var result = ""
        for scalar in text.unicodeScalars.prefix(200) {
            if scalar.value < 0x20 || scalar.value == 0x7F {
                result += "\\x" + (scalar.value < 16 ? "0" : "") + String(scalar.value, radix: 16)
            } else {
                result.unicodeScalars.append(scalar)
            }
        }
        return result
    }
}
