import Dataplane

/// /v1/events: the event history as JSON, or a server-sent event stream.
extension ManagementAPI {
    func getEvents(_ request: HTTPRequest) throws(APIError) -> HTTPResponse {
        var since: UInt64?
        // Both are checked when both are given; ?since wins (it is the explicit one).
        for text in [request.header("last-event-id"), request.query["since"]] {
            guard let text else { continue }
            guard let value = UInt64(text.trimmingSpaces) else {
                throw APIError(.badRequest, .invalidSince, "since / Last-Event-ID must be a non-negative integer event id")
            }
            since = value
        }
        var filter = EventHub.Filter()
        if let types = request.query["type"] {
            var kinds = Set<SwitchEvent.Kind>()
            for part in types.split(separator: ",", omittingEmptySubsequences: false) {
                let name = String(part).trimmingSpaces
                if name.hasSuffix(".*") || !name.contains(".") && name != "error" {
                    // "migration" or "migration.*": every type in that family.
                    let family = name.hasSuffix(".*") ? String(name.dropLast(2)) : name
                    let members = SwitchEvent.Kind.allCases.filter { $0.rawValue.hasPrefix(family + ".") }
                    guard !members.isEmpty else { throw unknownType(name) }
                    kinds.formUnion(members)
                    continue
                }
                guard let kind = SwitchEvent.Kind(rawValue: name) else { throw unknownType(name) }
                kinds.insert(kind)
            }
            filter.types = kinds
        }
        if let port = request.query["port"] { filter.port = port }
        if request.acceptsJSONOnly {
            return .json(.array(events.history(since: since ?? 0, filter: filter).map(EventHub.json)))
        }
        let stream = events.subscribe(since: since, filter: filter)
        return HTTPResponse(status: 200, headers: [
            ("Content-Type", "text/event-stream"),
            ("Cache-Control", "no-cache"),
            ("X-Accel-Buffering", "no"),
        ], body: .stream(stream))
    }

    private func unknownType(_ name: String) -> APIError {
        APIError(.badRequest, .invalidEventType,
                 "unknown event type \"\(RouterText.printable(name))\"; known: \(SwitchEvent.Kind.allCases.map(\.rawValue).joined(separator: ", "))")
    }
}
