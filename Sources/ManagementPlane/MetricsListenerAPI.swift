/// What the read-only metrics listener (`--metrics-listen`) serves, with no token: GET
/// /metrics for Prometheus, /v1/health (liveness) and /v1/ready (readiness) for probes.
/// Every other path is 404, another method 405: nothing here changes anything.
public final class MetricsListenerAPI: Sendable {
    private let api: ManagementAPI
    private let routes: Router<ManagementAPI>

    public init(api: ManagementAPI) {
        self.api = api
        var router = Router<ManagementAPI>()
        router.add("GET", "/metrics") { api, _, _ throws(APIError) in try api.getMetrics() }
        router.add("GET", "/v1/health") { api, _, _ throws(APIError) in try api.health() }
        router.add("GET", "/v1/ready") { api, _, _ throws(APIError) in try api.readiness() }
        routes = router
    }

    public func handle(_ request: HTTPRequest) -> HTTPResponse {
        routes.route(request, context: api)
    }

    /// Every (method, path) it serves.
    public var routeTable: [(method: String, pattern: String)] { routes.table }
}
