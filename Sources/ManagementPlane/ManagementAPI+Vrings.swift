import PortService

/// /v1/ports/{name}/vrings and /v1/ports/{name}/vrings/{index}.
extension ManagementAPI {
    static func vringJSON(_ view: VringView) -> JSON {
        let vring = view.info
        return [
            "index": .integer(Int64(vring.index)),
            "direction": vring.index % 2 == 1 ? "guest_tx" : "guest_rx",
            "size": vring.size.map { .integer(Int64($0)) } ?? .null,
            "layout": .string(vring.ringLayout.rawValue),
            "wrap_counter": vring.wrapCounter.map { .bool($0) } ?? .null,
            "enabled": .bool(vring.enabled),
            "started": .bool(vring.started),
            "desc_addr": hex(vring.descriptorAddress),
            "avail_addr": hex(vring.availAddress),
            "used_addr": hex(vring.usedAddress),
            "log_guest_addr": hex(vring.logAddress),
            "log_used": .bool(vring.logUsed),
            "last_avail_idx": .integer(Int64(vring.lastAvailIndex)),
            "last_used_idx": vring.lastUsedIndex.map { .integer(Int64($0)) } ?? .null,
            "avail_idx": vring.currentAvailIndex.map { .integer(Int64($0)) } ?? .null,
            "used_idx": vring.currentUsedIndex.map { .integer(Int64($0)) } ?? .null,
            "has_kick": .bool(vring.hasKick),
            "kick_polled": .bool(vring.kickPolled),
            "has_call": .bool(vring.hasCall),
            "poll_thread": view.pollThread.map { .integer(Int64($0)) } ?? .null,
            "counters": CounterJSON.object(view.counters),
        ]
    }

    func getVrings(_ name: String) throws(APIError) -> HTTPResponse {
        let view: VringsView
        do { view = try service.vrings(port: name) } catch { throw APIError(error) }
        return .json(["vrings": .array(view.vrings.map(Self.vringJSON))])
    }

    func getVring(_ name: String, _ indexText: String) throws(APIError) -> HTTPResponse {
        do { try service.requireVhostUser(port: name) } catch { throw APIError(error) }
        guard indexText.utf8.count <= 6, indexText.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), let index = Int(indexText) else {
            throw APIError(.badRequest, .invalidVringIndex, "the vring index must be a non-negative integer")
        }
        let view: VringsView
        do { view = try service.vrings(port: name) } catch { throw APIError(error) }
        guard let vring = view.vrings.first(where: { $0.info.index == index }) else {
            throw APIError(.notFound, .vringNotFound, "port \(name) has no vring \(index) (it has \(2 * view.maxQueuePairs))")
        }
        return .json(Self.vringJSON(vring))
    }
}
