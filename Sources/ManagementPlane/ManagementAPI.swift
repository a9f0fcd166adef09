import CJansson
import CMicroHTTPD
import Dataplane
import Logging
import VhostSystem
import VhostUser
import Virtio

/// The REST resources under /v1 plus /metrics, over the PortManager facade. Handlers run on
/// libmicrohttpd's thread; everything they touch is thread-safe (PortManager, the control
/// loop's `perform`, atomics for counters).
public final class ManagementAPI: Sendable {
    public static let version = "0.1.0"

    public let ports: PortManager
    public let events: EventHub
    public let store: PortStateStore?
    let logger: Logger
    let startedAt: UInt64
    private let routes: Router<ManagementAPI>

    public init(ports: PortManager, events: EventHub, store: PortStateStore?, logger: Logger) {
        self.ports = ports
        self.events = events
        self.store = store
        self.logger = logger
        startedAt = MonotonicClock.nanoseconds()
        var router = Router<ManagementAPI>()
        ManagementAPI.register(&router)
        routes = router
    }

    public func handle(_ request: HTTPRequest) -> HTTPResponse {
        routes.route(request, context: self)
    }

    /// Every (method, path) the API serves.
    public var routeTable: [(method: String, pattern: String)] { routes.table }

    private static func register(_ router: inout Router<ManagementAPI>) {
        router.add("GET", "/v1/health") { api, _, _ throws(APIError) in try api.health() }
        router.add("GET", "/v1/version") { api, _, _ throws(APIError) in try api.versionInfo() }
        router.add("GET", "/v1/ports") { api, _, _ throws(APIError) in try api.listPorts() }
        router.add("POST", "/v1/ports") { api, request, _ throws(APIError) in try api.createPort(request) }
        router.add("GET", "/v1/ports/{name}") { api, _, p throws(APIError) in try api.getPort(p["name"]) }
        router.add("DELETE", "/v1/ports/{name}") { api, _, p throws(APIError) in try api.deletePort(p["name"]) }
        router.add("GET", "/v1/ports/{name}/features") { api, _, p throws(APIError) in try api.getFeatures(p["name"]) }
        router.add("PUT", "/v1/ports/{name}/features") { api, request, p throws(APIError) in try api.putFeatures(p["name"], request) }
        router.add("PATCH", "/v1/ports/{name}/features") { api, request, p throws(APIError) in try api.patchFeatures(p["name"], request) }
        router.add("GET", "/v1/ports/{name}/device") { api, _, p throws(APIError) in try api.getDevice(p["name"]) }
        router.add("GET", "/v1/ports/{name}/vrings") { api, _, p throws(APIError) in try api.getVrings(p["name"]) }
        router.add("GET", "/v1/ports/{name}/vrings/{index}") { api, _, p throws(APIError) in try api.getVring(p["name"], p["index"]) }
        router.add("GET", "/v1/ports/{name}/stats") { api, _, p throws(APIError) in try api.getPortStats(p["name"]) }
        router.add("GET", "/v1/stats") { api, _, _ throws(APIError) in try api.getStats() }
        router.add("GET", "/v1/fdb") { api, _, _ throws(APIError) in try api.getFDB() }
        router.add("DELETE", "/v1/fdb") { api, _, _ throws(APIError) in try api.flushFDB() }
        router.add("DELETE", "/v1/fdb/{mac}") { api, _, p throws(APIError) in try api.deleteFDBEntry(p["mac"]) }
        router.add("GET", "/v1/events") { api, request, _ throws(APIError) in try api.getEvents(request) }
        router.add("GET", "/metrics") { api, _, _ throws(APIError) in
            .text(MetricsExposition.render(api), contentType: "text/plain; version=0.0.4; charset=utf-8")
        }
    }

    // MARK: Service

    func health() throws(APIError) -> HTTPResponse {
        .json([
            "status": "ok",
            "ports": .integer(Int64(ports.allPorts.count)),
            "uptime_seconds": .integer(Int64((MonotonicClock.nanoseconds() &- startedAt) / 1_000_000_000)),
        ])
    }

    func versionInfo() throws(APIError) -> HTTPResponse {
        .json([
            "version": .string(Self.version),
            "api": "v1",
            "libmicrohttpd": .string(MHD_get_version().map { String(cString: $0) } ?? "unknown"),
            "jansson": .string(jansson_version_str().map { String(cString: $0) } ?? "unknown"),
        ])
    }

    // MARK: Ports

    func port(_ name: String) throws(APIError) -> PortManager.Port {
        guard let port = ports.port(named: name) else {
            throw APIError(.notFound, "port_not_found", "no port named \"\(RouterText.printable(name))\"")
        }
        return port
    }

    func vhostDevice(_ name: String) throws(APIError) -> (PortManager.Port, VhostUserDevice) {
        let port = try port(name)
        guard let device = port.device else {
            throw APIError(.notFound, "not_vhost_user", "port \(name) is a \(port.spec.kind.typeName) port: it has no vhost-user device")
        }
        return (port, device)
    }

    func listPorts() throws(APIError) -> HTTPResponse {
        .json(["ports": .array(ports.allPorts.map { portJSON($0) })])
    }

    func getPort(_ name: String) throws(APIError) -> HTTPResponse {
        .json(portJSON(try port(name)))
    }

    func createPort(_ request: HTTPRequest) throws(APIError) -> HTTPResponse {
        let body = try request.jsonBody()
        let spec: PortSpec
        do { spec = try PortSpecDecoder.decode(body) } catch {
            throw APIError(.badRequest, "invalid_port", error.message)
        }
        let port: PortManager.Port
        do { port = try ports.create(spec) } catch { throw APIError(error) }
        store?.saveLogging(ports.allPorts)
        var response = HTTPResponse.json(portJSON(port), status: 201)
        response.headers.append(("Location", "/v1/ports/\(spec.name)"))
        return response
    }

    func deletePort(_ name: String) throws(APIError) -> HTTPResponse {
        do { try ports.delete(name: name) } catch { throw APIError(error) }
        store?.saveLogging(ports.allPorts)
        return .noContent()
    }

    func portJSON(_ port: PortManager.Port) -> JSON {
        var object: [String: JSON] = [
            "name": .string(port.spec.name),
            "type": .string(port.spec.kind.typeName),
            "id": .integer(Int64(port.id)),
        ]
        switch port.spec.kind {
        case .afPacket(let interface):
            object["interface"] = .string(interface)
        case .vhostUser(let vhost):
            var socket: [String: JSON] = [
                "path": .string(vhost.socketPath),
                "absolute_path": port.socketPath.map { .string($0) } ?? .null,
                "mode": .string(vhost.mode.rawValue),
                "owner": vhost.owner.map { .string($0) } ?? .null,
                "group": vhost.group.map { .string($0) } ?? .null,
                "permissions": vhost.permissions.map { .string(PortSpecEncoder.octal($0)) } ?? .null,
            ]
            if vhost.mode == .client { socket["owner"] = .null; socket["group"] = .null }
            object["socket"] = .object(socket)
            object["queues"] = .integer(Int64(vhost.queuePairs))
            object["mtu"] = vhost.mtu.map { .integer(Int64($0)) } ?? .null
            object["mac"] = vhost.mac.map { .string($0) } ?? .null
            if let device = port.device {
                let info = ports.controlLoop.info(of: device)
                object["state"] = .string(info.state.rawValue)
                object["features"] = ["offered": Self.featureSet(device.offeredFeatures)]
            }
        }
        return .object(object)
    }

    // MARK: Features

    static func featureSet(_ mask: UInt64) -> JSON {
        ["mask": .string(PortSpecEncoder.hex(mask)), "names": .array(FeatureNames.names(of: mask).map { .string($0) })]
    }

    static func protocolFeatureSet(_ mask: UInt64) -> JSON {
        ["mask": .string(PortSpecEncoder.hex(mask)), "names": .array(VhostUserProtocolFeature.names(of: mask).map { .string($0) })]
    }

    func featuresJSON(_ device: VhostUserDevice, info: VhostUserDeviceInfo) -> [String: JSON] {
        [
            "supported": Self.featureSet(VhostUserDevice.supportedFeatures),
            "offered": Self.featureSet(device.offeredFeatures),
            "negotiated": info.negotiatedFeatures.map(Self.featureSet) ?? .null,
            "protocol": [
                "offered": Self.protocolFeatureSet(info.offeredProtocolFeatures),
                "negotiated": info.negotiatedProtocolFeatures.map(Self.protocolFeatureSet) ?? .null,
            ],
        ]
    }

    func getFeatures(_ name: String) throws(APIError) -> HTTPResponse {
        let (_, device) = try vhostDevice(name)
        return .json(.object(featuresJSON(device, info: ports.controlLoop.info(of: device))))
    }

    func putFeatures(_ name: String, _ request: HTTPRequest) throws(APIError) -> HTTPResponse {
        let (_, device) = try vhostDevice(name)
        guard let body = try request.jsonBody().objectValue else {
            throw APIError(.badRequest, "invalid_body", "the body must be an object {\"mask\": \"0x...\"}")
        }
        try Self.rejectUnknown(body, allowed: ["mask"])
        guard let text = body["mask"]?.stringValue else { throw APIError(.badRequest, "invalid_body", "mask is required (a hex string)") }
        guard let mask = PortSpecDecoder.parseMask(text) else {
            throw APIError(.badRequest, "invalid_mask", "mask must be a hex string such as \"0x140000000\"")
        }
        return try applyFeatures(name, device, mask)
    }

    func patchFeatures(_ name: String, _ request: HTTPRequest) throws(APIError) -> HTTPResponse {
        let (_, device) = try vhostDevice(name)
        guard let body = try request.jsonBody().objectValue else {
            throw APIError(.badRequest, "invalid_body", "the body must be an object {\"enable\": [...], \"disable\": [...]}")
        }
        try Self.rejectUnknown(body, allowed: ["enable", "disable"])
        var mask = device.offeredFeatures
        for (key, enable) in [("enable", true), ("disable", false)] {
            guard let value = body[key] else { continue }
            guard let items = value.arrayValue else { throw APIError(.badRequest, "invalid_body", "\(key) must be a list of feature names") }
            for item in items {
                guard let featureName = item.stringValue else { throw APIError(.badRequest, "invalid_body", "\(key) must contain only strings") }
                guard let bit = FeatureNames.bit(named: featureName) else {
                    throw APIError(.badRequest, "unknown_feature", "unknown feature \"\(RouterText.printable(featureName))\"")
                }
                let bitMask = UInt64(1) << UInt64(bit)
                if enable { mask |= bitMask } else { mask &= ~bitMask }
            }
        }
        return try applyFeatures(name, device, mask)
    }

    private func applyFeatures(_ name: String, _ device: VhostUserDevice, _ mask: UInt64) throws(APIError) -> HTTPResponse {
        let unsupported = mask & ~VhostUserDevice.supportedFeatures
        if unsupported != 0 {
            throw APIError(.badRequest, "unsupported_features",
                           "features \(FeatureNames.names(of: unsupported).joined(separator: ", ")) (\(PortSpecEncoder.hex(unsupported))) are not supported by this switch")
        }
        let before = device.offeredFeatures
        do { try device.setOfferedFeatures(mask) } catch {
            throw APIError(.badRequest, "unsupported_features", error.description)
        }
        let info = ports.controlLoop.info(of: device)
        let sessionRunning = info.state == .connected || info.state == .ready
        if before != mask {
            events.publish(SwitchEvent(.featuresChanged, port: name, data: [
                "offered": .string(PortSpecEncoder.hex(mask)), "source": .string("api"),
                "applies": .string(sessionRunning ? "next_session" : "now"),
            ]))
            store?.saveLogging(ports.allPorts)
        }
        var object = featuresJSON(device, info: info)
        object["applies"] = .string(sessionRunning ? "next_session" : "now")
        object["message"] = .string(sessionRunning
            ? "a session is running with the features it negotiated; the new offer applies from the next session"
            : "the next front-end to connect is offered these features")
        return .json(.object(object))
    }

    static func rejectUnknown(_ object: [String: JSON], allowed: Set<String>) throws(APIError) {
        if let unknown = object.keys.sorted().first(where: { !allowed.contains($0) }) {
            throw APIError(.badRequest, "unknown_field", "unknown field \"\(RouterText.printable(unknown))\"")
        }
    }

    // MARK: Device and vrings

    static func hex(_ value: UInt64?) -> JSON { value.map { .string(PortSpecEncoder.hex($0)) } ?? .null }

    static func count(_ value: UInt64) -> JSON { .integer(Int64(clamping: value)) }

    func getDevice(_ name: String) throws(APIError) -> HTTPResponse {
        let (_, device) = try vhostDevice(name)
        let info = ports.controlLoop.info(of: device)
        return .json([
            "name": .string(info.name),
            "socket": .string(info.socketPath),
            "mode": .string(info.mode.rawValue),
            "state": .string(info.state.rawValue),
            "features": [
                "offered": Self.featureSet(info.offeredFeatures),
                "negotiated": info.negotiatedFeatures.map(Self.featureSet) ?? .null,
            ],
            "protocol_features": [
                "offered": Self.protocolFeatureSet(info.offeredProtocolFeatures),
                "negotiated": info.negotiatedProtocolFeatures.map(Self.protocolFeatureSet) ?? .null,
            ],
            "mtu": info.mtu.map { .integer(Int64($0)) } ?? .null,
            "status": .integer(Int64(info.status)),
            "max_queue_pairs": .integer(Int64(info.maxQueuePairs)),
            "queue_pairs": .integer(Int64(info.activeQueuePairs)),
            "memory_regions": .array(info.memoryRegions.map { region in
                [
                    "guest_phys_addr": .string(PortSpecEncoder.hex(region.guestPhysicalAddress)),
                    "size": Self.count(region.size),
                    "userspace_addr": .string(PortSpecEncoder.hex(region.userspaceAddress)),
                    "mmap_offset": .string(PortSpecEncoder.hex(region.mmapOffset)),
                ]
            }),
            "dirty_logging": .bool(info.dirtyLogging),
            "sessions": Self.count(info.sessions),
            "refused_requests": Self.count(info.refusedRequests),
            "sessions_closed_on_error": Self.count(info.sessionsClosedOnError),
            "guest_faults": Self.count(info.guestFaults),
            "last_error": info.lastError.map { .string($0) } ?? .null,
        ])
    }

    func vringJSON(_ vring: VhostUserVringInfo, port: String, assignments: [Switch.QueueAssignment]) -> JSON {
        let thread = assignments.first { $0.portName == port && $0.vringIndex == vring.index }?.pollThread
        return [
            "index": .integer(Int64(vring.index)),
            "direction": vring.index % 2 == 1 ? "guest_tx" : "guest_rx",
            "size": vring.size.map { .integer(Int64($0)) } ?? .null,
            "layout": .string(vring.ringLayout.rawValue),
            "wrap_counter": vring.wrapCounter.map { .bool($0) } ?? .null,
            "enabled": .bool(vring.enabled),
            "started": .bool(vring.started),
            "desc_addr": Self.hex(vring.descriptorAddress),
            "avail_addr": Self.hex(vring.availAddress),
            "used_addr": Self.hex(vring.usedAddress),
            "log_guest_addr": Self.hex(vring.logAddress),
            "log_used": .bool(vring.logUsed),
            "last_avail_idx": .integer(Int64(vring.lastAvailIndex)),
            "last_used_idx": vring.lastUsedIndex.map { .integer(Int64($0)) } ?? .null,
            "avail_idx": vring.currentAvailIndex.map { .integer(Int64($0)) } ?? .null,
            "used_idx": vring.currentUsedIndex.map { .integer(Int64($0)) } ?? .null,
            "has_kick": .bool(vring.hasKick),
            "kick_polled": .bool(vring.kickPolled),
            "has_call": .bool(vring.hasCall),
            "poll_thread": thread.map { .integer(Int64($0)) } ?? .null,
            "counters": CounterJSON.object(vring.statistics?.snapshot() ?? VirtqueueStatisticsSnapshot()),
        ]
    }

    func getVrings(_ name: String) throws(APIError) -> HTTPResponse {
        let (_, device) = try vhostDevice(name)
        let info = ports.controlLoop.info(of: device)
        let assignments = ports.fabric.queueAssignments
        return .json(["vrings": .array(info.vrings.map { vringJSON($0, port: name, assignments: assignments) })])
    }

    func getVring(_ name: String, _ indexText: String) throws(APIError) -> HTTPResponse {
        let (_, device) = try vhostDevice(name)
        guard indexText.utf8.count <= 6, indexText.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), let index = Int(indexText) else {
            throw APIError(.badRequest, "invalid_vring_index", "the vring index must be a non-negative integer")
        }
        let info = ports.controlLoop.info(of: device)
        guard let vring = info.vrings.first(where: { $0.index == index }) else {
            throw APIError(.notFound, "vring_not_found", "port \(name) has no vring \(index) (it has \(2 * info.maxQueuePairs))")
        }
        return .json(vringJSON(vring, port: name, assignments: ports.fabric.queueAssignments))
    }

    // MARK: Statistics

    /// Sums of a port's ring counters from the switch's side: rx = taken from the guest's
    /// transmit rings, tx = delivered to its receive rings.
    struct PortTotals {
        var rx = VirtqueueStatisticsSnapshot()
        var tx = VirtqueueStatisticsSnapshot()
        var info: VhostUserDeviceInfo?
    }

    func totals(_ port: PortManager.Port) -> PortTotals {
        var totals = PortTotals()
        guard let device = port.device else { return totals }
        let info = ports.controlLoop.info(of: device)
        totals.info = info
        for vring in info.vrings {
            guard let snapshot = vring.statistics?.snapshot() else { continue }
            if vring.index % 2 == 1 { totals.rx.add(snapshot) } else { totals.tx.add(snapshot) }
        }
        return totals
    }

    func portStatsJSON(_ port: PortManager.Port) -> JSON {
        let totals = totals(port)
        var object: [String: JSON] = [
            "name": .string(port.spec.name),
            "rx": CounterJSON.object(totals.rx),
            "tx": CounterJSON.object(totals.tx),
        ]
        // What the switch itself counted for this port, summed over poll threads, and two
        // ring drops the switch object shows too.
        var switchCounters: [String: JSON] = ["drops": [
            "no_guest_buffers": Self.count(totals.tx.dropsNoBuffers),
            "malformed_descriptor": Self.count(totals.rx.dropsMalformedDescriptor &+ totals.tx.dropsMalformedDescriptor),
        ]]
        CounterJSON.add(ports.fabric.statistics(portID: port.id), to: &switchCounters)
        object["switch"] = .object(switchCounters)
        if let kernel = port.packetStatistics?.snapshot() {
            var kernelCounters: [String: JSON] = ["interface_up": .bool(port.linkUp ?? false)]
            CounterJSON.add(kernel, to: &kernelCounters)
            object["kernel"] = .object(kernelCounters)
        }
        if let info = totals.info {
            object["state"] = .string(info.state.rawValue)
            object["sessions"] = Self.count(info.sessions)
            object["refused_requests"] = Self.count(info.refusedRequests)
            object["sessions_closed_on_error"] = Self.count(info.sessionsClosedOnError)
            object["guest_faults"] = Self.count(info.guestFaults)
            object["vrings"] = .array(info.vrings.map { vring in
                ["index": .integer(Int64(vring.index)), "counters": CounterJSON.object(vring.statistics?.snapshot() ?? VirtqueueStatisticsSnapshot())]
            })
        }
        return .object(object)
    }

    func getPortStats(_ name: String) throws(APIError) -> HTTPResponse {
        .json(portStatsJSON(try port(name)))
    }

    func getStats() throws(APIError) -> HTTPResponse {
        let assignments = ports.fabric.queueAssignments
        let threads = ports.fabric.pollThreadStatistics.enumerated().map { index, s -> JSON in
            [
                "index": .integer(Int64(index)),
                "iterations": Self.count(s.iterations),
                "busy_cycles": Self.count(s.busyCycles),
                "idle_cycles": Self.count(s.idleCycles),
                "packets": Self.count(s.packets),
                "sleeps": Self.count(s.sleeps),
                "busy_cycles_per_packet": .number(s.busyCyclesPerPacket),
                "busy_ratio": .number(s.busyRatio),
                "max_burst_ns": Self.count(s.maxIterationNanoseconds),
                "queues": .array(assignments.filter { $0.pollThread == index }.map {
                    ["port": .string($0.portName), "vring": .integer(Int64($0.vringIndex))]
                }),
            ]
        }
        let fdb = ports.fabric.fdb
        return .json([
            "ports": .array(ports.allPorts.map { portStatsJSON($0) }),
            "poll_threads": .array(threads),
            "fdb": ["entries": .integer(Int64(fdb.entries(now: Self.nowSeconds()).count)), "capacity": .integer(Int64(fdb.capacity))],
            "events": ["published": .integer(Int64(events.nextID - 1)), "subscribers": .integer(Int64(events.subscriberCount))],
        ])
    }

    // MARK: Forwarding database

    /// The MAC table's clock: monotonic seconds, as the poll threads stamp entries.
    static func nowSeconds() -> UInt32 { UInt32(truncatingIfNeeded: MonotonicClock.nanoseconds() / 1_000_000_000) }

    func getFDB() throws(APIError) -> HTTPResponse {
        let fdb = ports.fabric.fdb
        let entries = fdb.entries(now: Self.nowSeconds()).sorted { $0.mac < $1.mac }
        return .json([
            "capacity": .integer(Int64(fdb.capacity)),
            "aging_seconds": .integer(Int64(fdb.agingSeconds)),
            "entries": .array(entries.map { entry in
                [
                    "mac": .string(MacAddress.format(entry.mac)),
                    "port": ports.fabric.portName(id: entry.port).map { .string($0) } ?? .null,
                    "port_id": .integer(Int64(entry.port)),
                    "age_seconds": .integer(Int64(entry.ageSeconds)),
                ]
            }),
        ])
    }

    func flushFDB() throws(APIError) -> HTTPResponse {
        .json(["removed": .integer(Int64(ports.fabric.fdb.flush()))])
    }

    func deleteFDBEntry(_ text: String) throws(APIError) -> HTTPResponse {
        guard let mac = MacAddress.parse(text) else {
            throw APIError(.badRequest, "invalid_mac", "\"\(RouterText.printable(text))\" is not a MAC address like 02:00:00:00:00:01")
        }
        guard ports.fabric.fdb.remove(mac) else {
            throw APIError(.notFound, "mac_not_found", "\(MacAddress.format(mac)) is not in the forwarding database")
        }
        return .noContent()
    }

    // MARK: Events

    func getEvents(_ request: HTTPRequest) throws(APIError) -> HTTPResponse {
        var since: UInt64?
        // Both are checked when both are given; ?since wins (it is the explicit one).
        for text in [request.header("last-event-id"), request.query["since"]] {
            guard let text else { continue }
            guard let value = UInt64(text.trimmingSpaces) else {
                throw APIError(.badRequest, "invalid_since", "since / Last-Event-ID must be a non-negative integer event id")
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
        APIError(.badRequest, "invalid_event_type",
                 "unknown event type \"\(RouterText.printable(name))\"; known: \(SwitchEvent.Kind.allCases.map(\.rawValue).joined(separator: ", "))")
    }
}

extension APIError {
    /// The port manager's errors mapped onto statuses.
    init(_ error: PortManager.PortError) {
        switch error.code {
        case .invalid: self.init(.badRequest, "invalid_port", error.message)
        case .conflict: self.init(.conflict, "port_exists", error.message)
        case .notFound: self.init(.notFound, "port_not_found", error.message)
        case .unsupported: self.init(.badRequest, "unsupported", error.message)
        case .failed: self.init(.internalError, "port_failed", error.message)
        }
    }
}
