import Logging
import Synchronization
import VhostSystem

/// The API's listeners: always the unix socket (file permissions decide who may manage),
/// optionally TCP (a bearer token, or `--insecure-tcp` on loopback: `TCPListenerPolicy`;
/// the Host header checked: `HostHeaderPolicy`), optionally the read-only metrics listener
/// (`MetricsListenerAPI`: /metrics, liveness and readiness, no token), plus the thread that
/// sends SSE keep-alives.
public final class ManagementServer: Sendable {
    public struct Configuration: Sendable {
        /// The unix socket; created by us, mode 0660.
        public var socketPath: String
        public var socketPermissions: UInt32 = 0o660
        public var listen: TCPSocket.Address?
        /// Required on TCP unless `allowInsecureTCP` and the address is loopback.
        public var token: APITokenSource?
        public var allowInsecureTCP = false
        /// More names the TCP listener answers to in the Host header (`--api-host`).
        public var hostNames: [String] = []
        /// The read-only listener for Prometheus and probes.
        public var metricsListen: TCPSocket.Address?
        public var maxConnections = 64
        public var connectionTimeoutSeconds = 30
        public var connectionMemoryBytes = 64 * 1024
        public var perIPConnectionLimit = 16
        public var maxBodyBytes = 64 * 1024
        public var heartbeatMilliseconds = 15_000
        public var eventStreamWriteTimeoutSeconds = 10
        /// Listeners handed over by the previous process (live hand-over), used instead of
        /// binding new ones; each is checked to be what it claims.
        public var inherited = InheritedListeners()

        public init(socketPath: String) {
            self.socketPath = socketPath
        }
    }

    public struct InheritedListeners: @unchecked Sendable {
        public var unix: FileDescriptor?
        public var tcp: FileDescriptor?
        public var metrics: FileDescriptor?
        public init(unix: FileDescriptor? = nil, tcp: FileDescriptor? = nil, metrics: FileDescriptor? = nil) {
            self.unix = unix
            self.tcp = tcp
            self.metrics = metrics
        }
    }

    public struct StartError: Error, CustomStringConvertible {
        public var description: String
    }

    public let api: ManagementAPI
    public let configuration: Configuration
    /// The bound TCP port (useful with `--listen 127.0.0.1:0`).
    public let tcpPort: UInt16?
    /// The bound port of the metrics listener.
    public let metricsPort: UInt16?
    private let servers: [HTTPServer]
    private final class Flag: Sendable {
        let value = Atomic<Bool>(false)
    }

    private let stopping: Flag
    private let heartbeat: SystemThread?
    private let logger: Logger

    public init(api: ManagementAPI, configuration: Configuration, logger: Logger) throws(StartError) {
        if let listen = configuration.listen,
           let warning = try TCPListenerPolicy.check(listen: listen, hasToken: configuration.token != nil,
                                                     allowInsecure: configuration.allowInsecureTCP) {
            logger.warning("\(warning)")
        }
        self.api = api
        self.configuration = configuration
        self.logger = logger
        var servers: [HTTPServer] = []
        func settings(_ transport: HTTPRequest.Transport) -> HTTPServer.Configuration {
            var settings = HTTPServer.Configuration(transport: transport)
            settings.maxConnections = configuration.maxConnections
            settings.connectionTimeoutSeconds = configuration.connectionTimeoutSeconds
            settings.connectionMemoryBytes = configuration.connectionMemoryBytes
            settings.perIPConnectionLimit = configuration.perIPConnectionLimit
            settings.maxBodyBytes = configuration.maxBodyBytes
            settings.streamWriteTimeoutSeconds = configuration.eventStreamWriteTimeoutSeconds
            return settings
        }
        let inherited = configuration.inherited
        func stopAll() {
            for server in servers { server.stop() }
            // An inherited socket's file is still the previous process's.
            if inherited.unix == nil { FileSystem.remove(configuration.socketPath) }
        }
        do {
            let parent = String(configuration.socketPath.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/"))
            if !parent.isEmpty { try FileSystem.makeDirectoryTree(parent) }
            let unix: FileDescriptor
            if let handed = inherited.unix {
                guard UnixSocket.listeningPath(handed) == configuration.socketPath else {
                    throw StartError(description: "the handed-over API socket does not listen on \(configuration.socketPath)")
                }
                unix = handed
            } else {
                unix = try UnixSocket.listen(path: configuration.socketPath, backlog: 64, permissions: .init(configuration.socketPermissions))
            }
            servers.append(try HTTPServer(socket: unix, configuration: settings(.unix)) { [api] in api.handle($0) })
        } catch {
            throw StartError(description: "cannot serve the API on \(configuration.socketPath): \(error)")
        }
        var tcpPort: UInt16?
        if let listen = configuration.listen {
            do {
                let socket = try inherited.tcp.map(Self.checkedTCP) ?? TCPSocket.listen(listen)
                let port = try TCPSocket.boundPort(socket)
                tcpPort = port
                var tcp = settings(.tcp)
                tcp.token = configuration.token
                tcp.hostPolicy = HostHeaderPolicy(listen: listen, port: port, extraNames: configuration.hostNames)
                servers.append(try HTTPServer(socket: socket, configuration: tcp) { [api] in api.handle($0) })
            } catch {
                stopAll()
                throw StartError(description: "cannot serve the API on \(listen): \(error)")
            }
        }
        var metricsPort: UInt16?
        if let metricsListen = configuration.metricsListen {
            do {
                let socket = try inherited.metrics.map(Self.checkedTCP) ?? TCPSocket.listen(metricsListen)
                metricsPort = try TCPSocket.boundPort(socket)
                let readOnly = MetricsListenerAPI(api: api)
                servers.append(try HTTPServer(socket: socket, configuration: settings(.tcp)) { readOnly.handle($0) })
            } catch {
                stopAll()
                throw StartError(description: "cannot serve metrics on \(metricsListen): \(error)")
            }
        }
        self.tcpPort = tcpPort
        self.metricsPort = metricsPort
        self.servers = servers
        let events = api.events
        let interval = configuration.heartbeatMilliseconds
        let stopping = Flag()
        self.stopping = stopping
        heartbeat = try? SystemThread(name: "api-heartbeat") {
            var elapsed = 0
            while !stopping.value.load(ordering: .acquiring) {
                SystemThread.sleep(milliseconds: 100)
                elapsed += 100
                if elapsed >= interval {
                    elapsed = 0
                    events.heartbeat()
                }
            }
        }
        func described(_ address: TCPSocket.Address?, _ port: UInt16?) -> String {
            address.map { "\($0.isIPv6 ? "[\($0.host)]" : $0.host):\(port ?? $0.port)" } ?? "off"
        }
        logger.info("management API listening", metadata: [
            "socket": "\(configuration.socketPath)",
            "tcp": "\(described(configuration.listen, tcpPort))",
            "metrics": "\(described(configuration.metricsListen, metricsPort))",
            "token": "\(configuration.token == nil ? "none" : "required on tcp")",
        ])
    }

    private static func checkedTCP(_ socket: FileDescriptor) throws(SystemError) -> FileDescriptor {
        guard UnixSocket.isListeningTCP(socket) else { throw SystemError("handed-over TCP listener", errno: 22) }
        try socket.setNonBlocking()
        return socket
    }

    /// The listening sockets (unix, TCP, metrics), for a live hand-over. Still libmicrohttpd's:
    /// send copies, close nothing.
    public var listenerDescriptors: (unix: Int32, tcp: Int32?, metrics: Int32?) {
        var servers = self.servers.makeIterator()
        let unix = servers.next()?.listenDescriptor ?? -1
        let tcp = configuration.listen == nil ? nil : servers.next()?.listenDescriptor
        let metrics = configuration.metricsListen == nil ? nil : servers.next()?.listenDescriptor
        return (unix, tcp, metrics)
    }

    /// Ends event streams, stops the listeners and removes the unix socket file.
    public func stop() {
        guard !stopping.value.exchange(true, ordering: .acquiringAndReleasing) else { return }
        api.events.closeAll()
        for server in servers { server.stop() }
        heartbeat?.join()
        FileSystem.remove(configuration.socketPath)
    }
}
