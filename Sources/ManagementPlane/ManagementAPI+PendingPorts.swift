import PortService
import VhostSystem

/// Saved ports that could not be restored yet (`PendingRestore`), as GET /v1/ports and
/// /v1/ports/{name} show them: the port's settings, `"id": null`, `"state": "pending"` and
/// a `restore` object with the last error and the retry schedule.
extension ManagementAPI {
    /// The `state` of a port not restored yet (beside the connection states; the OpenAPI's
    /// PortInfo.state lists it: OpenAPIContractTests).
    static let pendingPortState = "pending"

    static func pendingPortJSON(_ pending: PendingRestore) -> JSON {
        guard case .object(var object) = portJSON(pending.settingsView) else { return .null }
        let now = MonotonicClock.nanoseconds()
        let dueInMilliseconds = pending.nextAttemptAt > now ? (pending.nextAttemptAt - now) / 1_000_000 : 0
        let restore: [String: JSON] = [
            "last_error": .string(pending.lastError),
            "attempts": .integer(Int64(pending.attempts)),
            "next_attempt_in_ms": .integer(Int64(dueInMilliseconds)),
        ]
        object["id"] = JSON.null
        object["state"] = JSON.string(Self.pendingPortState)
        object["restore"] = .object(restore)
        return .object(object)
    }

    /// The pending ports' JSON, in save order.
    var pendingPortsJSON: [JSON] { service.pendingRestoreViews.map(Self.pendingPortJSON) }

    func pendingPortJSON(named name: String) -> JSON? {
        service.pendingRestoreViews.first { $0.spec.name == name }.map(Self.pendingPortJSON)
    }
}
