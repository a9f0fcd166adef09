/// /v1/ready: readiness (`ReadinessMonitor`). 200 while the control loop and every poll
/// thread make progress, 503 once one has made none for `stall_seconds`. /v1/health stays
/// liveness: the daemon answers.
extension ManagementAPI {
    func readiness() throws(APIError) -> HTTPResponse {
        let checks = readinessMonitor.check(service.progressCounters)
        let ready = !checks.contains { $0.stalled }
        return .json([
            "status": .string(ready ? "ready" : "not_ready"),
            "stall_seconds": .integer(Int64(readinessMonitor.stallSeconds)),
            "checks": .array(checks.map { check in
                [
                    "name": .string(check.name),
                    "seconds_without_progress": .integer(Int64(check.secondsWithoutProgress)),
                    "stalled": .bool(check.stalled),
                ]
            }),
        ], status: ready ? 200 : 503)
    }
}
