/// /metrics: the Prometheus text exposition (`MetricsExposition`).
extension ManagementAPI {
    func getMetrics() throws(APIError) -> HTTPResponse {
        .text(MetricsExposition.render(self), contentType: "text/plain; version=0.0.4; charset=utf-8")
    }
}
