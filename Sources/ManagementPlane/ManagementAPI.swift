import CJansson
import CMicroHTTPD
import Dataplane
import Logging
import PortService
import VhostSystem
import VhostUser
import Virtio

/// The REST resources under /v1 plus /metrics: HTTP and JSON over `PortService`, which owns
/// the ports, their feature changes, persistence (an observer) and the read models.
/// One file per resource (`ManagementAPI+Ports`, `+Features`, `+Device`, `+Vrings`,
/// `+Stats`, `+FDB`, `+Events`, `+Metrics`, `+Logging`); the route table is `register` below. Handlers
/// run on libmicrohttpd's thread; the service and the event hub are thread-safe.
public final class ManagementAPI: Sendable {
    public static let version = "0.1.0"

    public let service: PortService
    public let events: EventHub
    /// Readiness (`/v1/ready`): whether the threads that must keep moving do.
    public let readinessMonitor: ReadinessMonitor
    /// The level every logger of the daemon logs at (GET/PUT /v1/log-level).
    public let logLevel: RuntimeLogLevel
    let logger: Logger
    let startedAt: UInt64
    private let routes: Router<ManagementAPI>

    public init(service: PortService, events: EventHub, logger: Logger, readiness: ReadinessMonitor = ReadinessMonitor(),
                logLevel: RuntimeLogLevel = RuntimeLogLevel(.info)) {
        self.service = service
        self.events = events
        readinessMonitor = readiness
        self.logLevel = logLevel
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

    /// The route table: every resource, in one place.
    private static func register(_ router: inout Router<ManagementAPI>) {
        router.add("GET", "/v1/health") { api, _, _ throws(APIError) in try api.health() }
        router.add("GET", "/v1/ready") { api, _, _ throws(APIError) in try api.readiness() }
        router.add("GET", "/v1/version") { api, _, _ throws(APIError) in try api.versionInfo() }
        router.add("GET", "/v1/ports") { api, _, _ throws(APIError) in try api.listPorts() }
        router.add("POST", "/v1/ports") { api, request, _ throws(APIError) in try api.createPort(request) }
        router.add("GET", "/v1/ports/{name}") { api, _, p throws(APIError) in try api.getPort(p["name"]) }
        router.add("PATCH", "/v1/ports/{name}") { api, request, p throws(APIError) in try api.patchPort(p["name"], request) }
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
        router.add("GET", "/v1/log-level") { api, _, _ throws(APIError) in try api.getLogLevel() }
        router.add("PUT", "/v1/log-level") { api, request, _ throws(APIError) in try api.putLogLevel(request) }
        router.add("GET", "/metrics") { api, _, _ throws(APIError) in try api.getMetrics() }
    }

    // MARK: Service

    func health() throws(APIError) -> HTTPResponse {
        .json([
            "status": "ok",
            "ports": .integer(Int64(service.portCount)),
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

    // MARK: Shared shapes

    static func hex(_ value: UInt64?) -> JSON { value.map { .string(PortSpecEncoder.hex($0)) } ?? .null }

    static func count(_ value: UInt64) -> JSON { .integer(Int64(clamping: value)) }

    static func rejectUnknown(_ object: [String: JSON], allowed: Set<String>) throws(APIError) {
        if let unknown = object.keys.sorted().first(where: { !allowed.contains($0) }) {
            throw APIError(.badRequest, .unknownField, "unknown field \"\(RouterText.printable(unknown))\"")
        }
    }
}

extension APIError {
    /// The port service's errors mapped onto statuses.
    init(_ error: PortService.PortError) {
        switch error.code {
        case .invalid: self.init(.badRequest, .invalidPort, error.message)
        case .conflict: self.init(.conflict, .portExists, error.message)
        case .notFound: self.init(.notFound, .portNotFound, error.message)
        case .unsupported: self.init(.badRequest, .unsupported, error.message)
        case .failed: self.init(.internalError, .portFailed, error.message)
        }
    }

    /// A port the path names that is missing, or has no vhost-user device.
    init(_ error: PortLookupError) {
        switch error {
        case .noPort(let name):
            self.init(.notFound, .portNotFound, "no port named \"\(RouterText.printable(name))\"")
        case .notVhostUser(let name, let type):
            self.init(.notFound, .notVhostUser, "port \(name) is a \(type) port: it has no vhost-user device")
        }
    }
}
