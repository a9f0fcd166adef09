import CMicroHTTPD
import Synchronization
import VhostSystem

/// libmicrohttpd on one listening socket we created (unix or TCP), with its own epoll
/// thread. It turns libmicrohttpd's callbacks into `HTTPRequest`s, enforces what must
/// hold before a handler runs (bearer token, body cap counted while streaming in, JSON
/// content type) and writes `HTTPResponse`s, including event streams that park their
/// connection while there is nothing to send.
public final class HTTPServer: @unchecked Sendable {
    public struct Configuration: Sendable {
        public var transport: HTTPRequest.Transport
        /// Connections open at once (libmicrohttpd refuses more at accept).
        public var maxConnections = 64
        /// An idle or slow connection is closed after this many seconds.
        public var connectionTimeoutSeconds = 30
        /// libmicrohttpd's per-connection memory pool (headers and I/O buffers).
        public var connectionMemoryBytes = 64 * 1024
        /// Connections per client address; TCP only (libmicrohttpd cannot key unix peers).
        public var perIPConnectionLimit = 16
        /// Request bodies larger than this are refused with 413.
        public var maxBodyBytes = 64 * 1024
        /// When set, every request needs `Authorization: Bearer <token>`.
        public var token: APITokenSource?
        /// When set, a request whose `Host` header it refuses gets 421 (TCP: DNS rebinding).
        public var hostPolicy: HostHeaderPolicy?
        /// An event stream whose writes stay blocked this long (its reader stopped reading)
        /// is closed. Idle streams (nothing to send) are not affected.
        public var streamWriteTimeoutSeconds = 10

        public init(transport: HTTPRequest.Transport) {
            self.transport = transport
        }
    }

    public struct StartError: Error, CustomStringConvertible {
        public var description: String
    }

    public typealias Handler = @Sendable (HTTPRequest) -> HTTPResponse

    public let configuration: Configuration
    /// The listening socket (libmicrohttpd's): a live hand-over sends a copy to the new process.
    public let listenDescriptor: Int32
    private let handler: Handler
    private struct DaemonHandle: @unchecked Sendable {
        // libmicrohttpd's daemon is thread-safe for stop/resume; the pointer is just a handle.
        let pointer: OpaquePointer
    }

    private let daemon = Mutex<DaemonHandle?>(nil)
    private let streams = Mutex<[ObjectIdentifier: EventStream]>([:])
    private let liveStreams = Atomic<Int>(0)

    /// Starts serving on `socket` (listening, non-blocking). libmicrohttpd owns the socket
    /// from here on and closes it in `stop()`.
    public init(socket: FileDescriptor, configuration: Configuration, handler: @escaping Handler) throws(StartError) {
        self.configuration = configuration
        self.handler = handler
        let raw = socket.release()
        listenDescriptor = raw
        let context = Unmanaged.passRetained(self)
        let completed: MHD_RequestCompletedCallback = { _, _, requestContext, _ in
            guard let requestContext, let state = requestContext.pointee else { return }
            Unmanaged<RequestState>.fromOpaque(state).release()
            requestContext.pointee = nil
        }
        var options: [MHD_OptionItem] = [
            MHD_OptionItem(option: .LISTEN_SOCKET, value: Int(raw), ptr_value: nil),
            MHD_OptionItem(option: .CONNECTION_LIMIT, value: configuration.maxConnections, ptr_value: nil),
            MHD_OptionItem(option: .CONNECTION_TIMEOUT, value: configuration.connectionTimeoutSeconds, ptr_value: nil),
            MHD_OptionItem(option: .CONNECTION_MEMORY_LIMIT, value: configuration.connectionMemoryBytes, ptr_value: nil),
            MHD_OptionItem(option: .NOTIFY_COMPLETED, value: unsafeBitCast(completed, to: Int.self), ptr_value: nil),
        ]
        if configuration.transport == .tcp {
            options.append(MHD_OptionItem(option: .PER_IP_CONNECTION_LIMIT, value: configuration.perIPConnectionLimit, ptr_value: nil))
        }
        options.append(MHD_OptionItem(option: .END, value: 0, ptr_value: nil))
        let flags = MHD_USE_INTERNAL_POLLING_THREAD.rawValue | MHD_USE_EPOLL.rawValue | MHD_ALLOW_SUSPEND_RESUME.rawValue
        let access: MHD_AccessHandlerCallback = { cls, connection, url, method, _, uploadData, uploadSize, requestContext in
            guard let cls, let connection, let uploadSize, let requestContext else { return .NO }
            let server = Unmanaged<HTTPServer>.fromOpaque(cls).takeUnretainedValue()
            return server.access(connection, url: url, method: method, upload: uploadData, uploadSize: uploadSize, requestContext: requestContext)
        }
        let started = options.withUnsafeMutableBufferPointer { items in
            withVaList([MHD_OPTION.ARRAY.rawValue, items.baseAddress!, MHD_OPTION.END.rawValue]) { arguments in
                MHD_start_daemon_va(flags, 0, nil, nil, access, context.toOpaque(), arguments)
            }
        }
        guard let started else {
            context.release()
            FileDescriptor(adopting: raw).close()
            throw StartError(description: "libmicrohttpd refused to start on fd \(raw)")
        }
        daemon.withLock { $0 = DaemonHandle(pointer: started) }
    }

    /// Ends every event stream, then stops the daemon (which closes the socket).
    public func stop() {
        guard let running = daemon.withLock({ current -> DaemonHandle? in
            defer { current = nil }
            return current
        }) else { return }
        for stream in streams.withLock({ Array($0.values) }) { stream.close() }
        // Resumed streams finish on the daemon's thread; libmicrohttpd must not be stopped
        // while a connection is still suspended.
        var waited = 0
        while liveStreams.load(ordering: .acquiring) > 0 && waited < 2000 {
            SystemThread.sleep(milliseconds: 5)
            waited += 5
        }
        MHD_stop_daemon(running.pointer)
        Unmanaged.passUnretained(self).release()
    }

    /// Open event streams, for tests and metrics.
    public var openStreamCount: Int { liveStreams.load(ordering: .acquiring) }

    // MARK: Request handling (on libmicrohttpd's thread)

    /// What is known about a request between libmicrohttpd's calls for it.
    final class RequestState {
        var body: [UInt8] = []
        var received = 0
        var tooLarge = false
    }

    private func access(_ connection: OpaquePointer, url: UnsafePointer<CChar>?, method: UnsafePointer<CChar>?,
                        upload: UnsafePointer<CChar>?, uploadSize: UnsafeMutablePointer<Int>,
                        requestContext: UnsafeMutablePointer<UnsafeMutableRawPointer?>) -> MHD_Result {
        guard let stateRaw = requestContext.pointee else {
            // First call: headers only. Refuse early what can be refused before the body.
            let state = RequestState()
            requestContext.pointee = Unmanaged.passRetained(state).toOpaque()
            if let refusal = checkHeaders(connection) {
                return queue(refusal, on: connection)
            }
            return .YES
        }
        let state = Unmanaged<RequestState>.fromOpaque(stateRaw).takeUnretainedValue()
        if uploadSize.pointee > 0 {
            let count = uploadSize.pointee
            state.received += count
            if state.received > configuration.maxBodyBytes {
                state.tooLarge = true
                state.body = []
            } else if let upload {
                UnsafeRawBufferPointer(start: upload, count: count).withMemoryRebound(to: UInt8.self) { state.body.append(contentsOf: $0) }
            }
            uploadSize.pointee = 0
            return .YES
        }
        if state.tooLarge {
            return queue(.error(bodyTooLarge()), on: connection)
        }
        let request = HTTPRequest(
            method: method.map { String(cString: $0) } ?? "GET",
            path: url.map { String(cString: $0) } ?? "/",
            query: Self.values(of: connection, kind: .GET_ARGUMENT_KIND),
            headers: Self.values(of: connection, kind: .HEADER_KIND),
            body: state.body, transport: configuration.transport,
            client: APIClientIdentity.key(socket: vhost_mhd_connection_fd(connection), transport: configuration.transport))
        state.body = []
        return queue(handler(request), on: connection)
    }

    private func bodyTooLarge() -> APIError {
        APIError(.payloadTooLarge, .bodyTooLarge, "request bodies are limited to \(configuration.maxBodyBytes) bytes")
    }

    private func checkHeaders(_ connection: OpaquePointer) -> HTTPResponse? {
        if let policy = configuration.hostPolicy {
            let host = Self.header(connection, "Host")
            if !policy.allows(host) {
                return .error(APIError(.misdirectedRequest, .invalidHost,
                                       "Host \(RouterText.printable(host ?? "(none)")) does not name this listener; use its address (or a name given with --api-host)"))
            }
        }
        if let token = configuration.token {
            let given = Self.header(connection, "Authorization")
            if !token.matches(authorizationHeader: given) {
                return .error(APIError(.unauthorized, .unauthorized,
                                       given == nil ? "this listener needs Authorization: Bearer <token>" : "the bearer token is not valid",
                                       headers: [("WWW-Authenticate", #"Bearer realm="vhost-switch""#)]))
            }
        }
        let length = Self.header(connection, "Content-Length").flatMap { UInt64($0.trimmingSpaces) }
        if let length, length > UInt64(configuration.maxBodyBytes) {
            return .error(bodyTooLarge())
        }
        let chunked = Self.header(connection, "Transfer-Encoding")?.lowercased().contains("chunked") ?? false
        if (length ?? 0) > 0 || chunked {
            let type = Self.header(connection, "Content-Type")
            if !Self.isJSONMediaType(type) {
                return .error(APIError(.unsupportedMediaType, .unsupportedMediaType,
                                       "request bodies must be application/json (or application/merge-patch+json), not \(RouterText.printable(type ?? "(none)"))"))
            }
        }
        return nil
    }

    /// "application/json", or "application/merge-patch+json" (RFC 7396: a JSON document,
    /// what PATCH /v1/ports/{name} takes), optionally with parameters ("; charset=utf-8").
    static func isJSONMediaType(_ value: String?) -> Bool {
        guard let value else { return false }
        let essence = value.split(separator: ";", maxSplits: 1).first.map { String($0).trimmingSpaces.lowercased() } ?? ""
        return essence == "application/json" || essence == "application/merge-patch+json"
    }

    private static func header(_ connection: OpaquePointer, _ name: String) -> String? {
        MHD_lookup_connection_value(connection, .HEADER_KIND, name).map { String(cString: $0) }
    }

    private final class ValueCollector {
        var values: [String: String] = [:]
    }

    private static func values(of connection: OpaquePointer, kind: MHD_ValueKind) -> [String: String] {
        let collector = ValueCollector()
        let iterator: MHD_KeyValueIterator = { cls, _, key, value in
            guard let cls, let key else { return .YES }
            let collector = Unmanaged<ValueCollector>.fromOpaque(cls).takeUnretainedValue()
            let name = String(cString: key)
            if collector.values[name] == nil { collector.values[name] = value.map { String(cString: $0) } ?? "" }
            return .YES
        }
        withExtendedLifetime(collector) {
            _ = MHD_get_connection_values(connection, kind, iterator, Unmanaged.passUnretained(collector).toOpaque())
        }
        return collector.values
    }

    // MARK: Responses

    private func queue(_ response: HTTPResponse, on connection: OpaquePointer) -> MHD_Result {
        let made: OpaquePointer?
        switch response.body {
        case .bytes(let bytes):
            made = bytes.withUnsafeBytes { buffer in
                MHD_create_response_from_buffer(buffer.count, UnsafeMutableRawPointer(mutating: buffer.baseAddress), .RESPMEM_MUST_COPY)
            }
        case .stream(let stream):
            made = makeStreamResponse(stream, connection: connection)
        }
        guard let made else { return .NO }
        defer { MHD_destroy_response(made) }
        for (name, value) in response.headers {
            // Header values never carry CR or LF (libmicrohttpd refuses them anyway).
            _ = MHD_add_response_header(made, name, value)
        }
        return MHD_queue_response(connection, UInt32(response.status), made)
    }

    /// The per-connection side of an event stream.
    private final class StreamContext {
        let stream: EventStream
        let connection: OpaquePointer
        unowned let server: HTTPServer

        init(stream: EventStream, connection: OpaquePointer, server: HTTPServer) {
            self.stream = stream
            self.connection = connection
            self.server = server
        }
    }

    private struct ConnectionHandle: @unchecked Sendable {
        // Only used while the connection is suspended, when libmicrohttpd keeps it alive.
        let connection: OpaquePointer
    }

    private func makeStreamResponse(_ stream: EventStream, connection: OpaquePointer) -> OpaquePointer? {
        // MHD's inactivity time-out runs only while the connection is not suspended, i.e.
        // while there is something to write: it is this stream's write time-out.
        vhost_mhd_set_connection_timeout(connection, UInt32(clamping: configuration.streamWriteTimeoutSeconds))
        let context = StreamContext(stream: stream, connection: connection, server: self)
        let handle = ConnectionHandle(connection: connection)
        stream.attach { MHD_resume_connection(handle.connection) }
        pruneStreams()
        streams.withLock { $0[ObjectIdentifier(stream)] = stream }
        liveStreams.add(1, ordering: .releasing)
        let reader: MHD_ContentReaderCallback = { cls, _, buffer, max in
            guard let cls, let buffer else { return MHD_CONTENT_READER_END_WITH_ERROR }
            let context = Unmanaged<StreamContext>.fromOpaque(cls).takeUnretainedValue()
            let result = context.stream.read(into: UnsafeMutableRawBufferPointer(start: buffer, count: max)) {
                MHD_suspend_connection(context.connection)
            }
            switch result {
            case .bytes(let count): return count
            case .wait: return 0
            case .end: return MHD_CONTENT_READER_END_OF_STREAM
            }
        }
        let free: MHD_ContentReaderFreeCallback = { cls in
            guard let cls else { return }
            let context = Unmanaged<StreamContext>.fromOpaque(cls).takeRetainedValue()
            // No locks here: libmicrohttpd may hold its own while it frees a response.
            context.stream.markFinished()
            context.server.streamFinished(context.stream)
        }
        let retained = Unmanaged.passRetained(context)
        let response = MHD_create_response_from_callback(UInt64.max, 4096, reader, retained.toOpaque(), free)
        if response == nil {
            retained.release()
            stream.markFinished()
            streamFinished(stream)
        }
        return response
    }

    private func streamFinished(_ stream: EventStream) {
        // Atomics only: see the free callback. The dictionary entry is pruned by `prune`.
        liveStreams.subtract(1, ordering: .releasing)
    }

    /// Forgets finished streams (called when new ones open and at stop).
    func pruneStreams() {
        streams.withLock { $0 = $0.filter { !$0.value.isFinished } }
    }
}

extension String {
    var trimmingSpaces: String {
        var scalars = Substring(self)
        while scalars.first == " " || scalars.first == "\t" { scalars.removeFirst() }
        while scalars.last == " " || scalars.last == "\t" { scalars.removeLast() }
        return String(scalars)
    }
}
