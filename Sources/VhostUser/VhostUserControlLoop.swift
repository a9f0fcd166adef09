import Logging
import Synchronization
import VhostSystem

/// The control thread: one epoll loop that owns every vhost-user socket (listeners,
/// sessions, client reconnect timers). Only this thread changes device state; other
/// threads post closures to it (`post`, or `perform` to wait for a result), woken through
/// an eventfd. Nothing it does blocks: reads, replies, accepts and connects are non-blocking
/// (a unix-socket connect completes or fails at once).
public final class VhostUserControlLoop: @unchecked Sendable {
    /// Client mode: first retry after 100 ms, doubling up to 2 s.
    public static let initialRetryMilliseconds = 100
    public static let maxRetryMilliseconds = 2000
    /// A listener whose accept fails (EMFILE, ENFILE, ENOMEM) is left alone this long: a
    /// level-triggered listener would otherwise spin the control thread.
    public static let acceptPauseMilliseconds: UInt64 = 100
    /// The longest epoll wait: an idle loop still completes a round this often, so a loop
    /// that stops completing rounds is stuck (readiness watches `rounds`).
    public static let maxWaitMilliseconds: Int32 = 1000

    final class Endpoint {
        let device: VhostUserDevice
        var listener: FileDescriptor?
        var retryMilliseconds = VhostUserControlLoop.initialRetryMilliseconds
        /// Client mode: when to try connecting next (monotonic ns).
        var nextAttempt: UInt64?
        var connectFailures = 0
        /// The listener's epoll token, to re-add it after an accept pause.
        var listenerToken: UInt64 = 0
        /// Server mode: accepting is paused until then (monotonic ns) after accept failed.
        var acceptResumesAt: UInt64?
        var acceptFailures = 0
        init(device: VhostUserDevice) { self.device = device }
    }

    enum Registration {
        case wakeup
        /// A session's `GuestFaultFlag` was raised (SIGBUS contained, ring stopped).
        case guestFault
        case listener(Endpoint)
        case connection(Endpoint, VhostUserConnection)
    }

    let epoll: Epoll
    private let wakeup: EventFD
    let guestFaults: EventFD
    let logger: Logger
    private struct Queue {
        var commands: [@Sendable () -> Void] = []
        var accepting = true
    }
    private let queue = Mutex(Queue())
    private var thread: SystemThread?
    private let completedRounds = Atomic<UInt64>(0)

    /// Loop rounds completed (one per epoll wake-up or time-out): progress, read by readiness.
    public var rounds: UInt64 { completedRounds.load(ordering: .relaxed) }

    // Loop-thread state.
    var endpoints: [ObjectIdentifier: Endpoint] = [:]
    /// The devices' names, for the duplicate check (a create costs the same with 10 or 1,000).
    var deviceNames: Set<String> = []
    /// The endpoints with a deadline (a connect attempt, an accept pause): the only ones the
    /// timers look at, so a loop round does not grow with the number of idle listeners.
    private var timed: [ObjectIdentifier: Endpoint] = [:]
    var registrations: [UInt64: Registration] = [:]
    private var nextToken: UInt64 = 1
    var stopping = false
    private let wakeupToken: UInt64 = 0
    private let guestFaultToken: UInt64 = 1

    /// Starts the control thread. The thread keeps the loop alive: call `shutdown()` to end it.
    public init(logger: Logger = Logger(label: "vhost-user")) throws(SystemError) {
        self.logger = logger
        epoll = try Epoll()
        wakeup = try EventFD()
        try epoll.add(wakeup.rawValue, events: Epoll.input, token: wakeupToken)
        registrations[wakeupToken] = .wakeup
        guestFaults = try EventFD()
        try epoll.add(guestFaults.rawValue, events: Epoll.input, token: guestFaultToken)
        registrations[guestFaultToken] = .guestFault
        nextToken = 2
        GuestMemoryGuard.install().map { logger.error("guest memory faults cannot be contained: \($0)") }
        thread = try SystemThread(name: "vhost-control") { [self] in run() }
    }

    // MARK: Commands from other threads

    /// Runs `body` on the control thread soon. After `shutdown` it runs on the caller's thread.
    public func post(_ body: @escaping @Sendable () -> Void) {
        let queued = queue.withLock { state -> Bool in
            guard state.accepting else { return false }
            state.commands.append(body)
            return true
        }
        if queued { wakeup.signal() } else { body() }
    }

    /// Runs `body` on the control thread and returns its result (for readers such as the
    /// REST API). Must not be called from the control thread itself (a delegate callback):
    /// that would wait for itself.
    public func perform<T: Sendable, E: Error>(_ body: @escaping @Sendable () throws(E) -> T) throws(E) -> T {
        let box = PerformResult<T, E>()
        guard let done = try? EventFD(nonBlocking: false) else {
            // No fd for the wait (fd exhaustion): fall back to polling the result.
            post { box.result.withLock { $0 = Result { () throws(E) -> T in try body() } } }
            while true {
                if let result = box.result.withLock({ $0 }) { return try result.get() }
                SystemThread.sleep(milliseconds: 1)
            }
        }
        post {
            box.result.withLock { $0 = Result { () throws(E) -> T in try body() } }
            done.signal()
        }
        while box.result.withLock({ $0 }) == nil { done.drain() }
        return try box.result.withLock { $0 }!.get()
    }

    // MARK: Devices

    /// Creates a port and starts listening (server) or connecting (client).
    public func addDevice(_ configuration: VhostUserDeviceConfiguration, delegate: any VhostUserDeviceDelegate) throws(VhostUserConfigurationError) -> VhostUserDevice {
        let logger = self.logger
        return try perform { () throws(VhostUserConfigurationError) -> VhostUserDevice in
            guard !self.deviceNames.contains(configuration.name) else {
                throw .duplicateName(configuration.name)
            }
            let device = try VhostUserDevice(configuration: configuration, delegate: delegate, logger: logger)
            device.faultNotifyDescriptor = self.guestFaults.rawValue
            let endpoint = Endpoint(device: device)
            switch configuration.mode {
            case .server:
                do {
                    let listener = try UnixSocket.listen(path: configuration.socketPath, permissions: configuration.socketPermissions)
                    endpoint.listenerToken = try self.register(listener.rawValue, .listener(endpoint))
                    endpoint.listener = listener
                } catch {
                    throw .socket("\(configuration.socketPath): \(error)")
                }
                device.endpointState = .listening
                device.logger.info("listening", metadata: ["socket": "\(configuration.socketPath)"])
            case .client:
                device.endpointState = .connecting
                endpoint.nextAttempt = MonotonicClock.nanoseconds()
            }
            self.endpoints[ObjectIdentifier(device)] = endpoint
            self.deviceNames.insert(configuration.name)
            if configuration.mode == .client { self.attemptConnect(endpoint) }
            return device
        }
    }

    /// Disconnects the session (queues withdrawn, `deviceDestroyed`), closes the sockets and
    /// removes the socket file in server mode.
    public func removeDevice(_ device: VhostUserDevice) {
        perform { self.remove(device) }
    }

    /// A snapshot of the device, taken on the control thread.
    public func info(of device: VhostUserDevice) -> VhostUserDeviceInfo {
        perform { device.info() }
    }

    /// Every device's info in one trip through the loop: a reply about all ports waits behind
    /// the loop's work once, not once per port (under a front-end's flood of messages, that
    /// wait is what a REST call costs).
    public func infos(of devices: [VhostUserDevice]) -> [VhostUserDeviceInfo] {
        devices.isEmpty ? [] : perform { devices.map { $0.info() } }
    }

    public var devices: [VhostUserDevice] {
        perform { self.endpoints.values.map(\.device) }
    }

    /// Removes every device and stops the thread. Later `post`s run on the caller's thread.
    public func shutdown() {
        guard let thread else { return }
        perform {
            for endpoint in Array(self.endpoints.values) { self.remove(endpoint.device) }
            self.stopping = true
        }
        thread.join()
        self.thread = nil
        let remaining = queue.withLock { state -> [@Sendable () -> Void] in
            state.accepting = false
            defer { state.commands = [] }
            return state.commands
        }
        for command in remaining { command() }
    }

    // MARK: The loop

    private func run() {
        var events: [Epoll.Event] = []
        while !stopping {
            do {
                try epoll.wait(into: &events, timeoutMilliseconds: nextTimeout())
            } catch {
                logger.error("epoll_wait failed: \(error)")
                SystemThread.sleep(milliseconds: 10)
                continue
            }
            for event in events {
                guard let registration = registrations[event.token] else { continue }  // closed earlier in this batch
                switch registration {
                case .wakeup:
                    wakeup.drain()
                    runCommands()
                case .guestFault:
                    guestFaults.drain()
                    closeFaultedSessions()
                case .listener(let endpoint):
                    acceptConnections(endpoint)
                case .connection(let endpoint, let connection):
                    if !connection.handleReadable() { sessionEnded(endpoint) }
                }
                if stopping { break }
            }
            runTimers()
            completedRounds.add(1, ordering: .relaxed)
        }
    }

    private func runCommands() {
        let commands = queue.withLock { state -> [@Sendable () -> Void] in
            defer { state.commands = [] }
            return state.commands
        }
        for command in commands { command() }
    }

    @discardableResult
    func register(_ fd: Int32, _ registration: Registration) throws(SystemError) -> UInt64 {
        let token = nextToken
        nextToken += 1
        try epoll.add(fd, events: Epoll.input | Epoll.peerHangup, token: token)
        registrations[token] = registration
        return token
    }

    /// Each session whose fault flag is up loses its port; nothing else is touched.
    private func closeFaultedSessions() {
        for endpoint in endpoints.values {
            if let connection = endpoint.device.connection, connection.closeIfFaulted() { sessionEnded(endpoint) }
        }
    }

    private func unregister(fd: Int32, where matches: (Registration) -> Bool) {
        epoll.remove(fd)
        for (token, registration) in registrations where matches(registration) {
            registrations[token] = nil
        }
    }

    private func acceptConnections(_ endpoint: Endpoint) {
        guard let listener = endpoint.listener else { return }
        while true {
            let accepted: FileDescriptor?
            do {
                accepted = try UnixSocket.accept(listener)
            } catch {
                pauseAccepting(endpoint, listener, error)
                return
            }
            guard let socket = accepted else { return }
            if endpoint.acceptFailures > 0 {
                endpoint.device.logger.notice("accepting again after \(endpoint.acceptFailures) failed accept(s)")
                endpoint.acceptFailures = 0
            }
            if let live = endpoint.device.connection, live.closeIfPeerHungUp() {
                // The front-end closed and reconnected at once (QEMU reconnect=, a restarted
                // DPDK application): its hang-up was still queued behind this accept, maybe
                // behind many requests it sent first, which nobody waits for any more.
                sessionEnded(endpoint)
            }
            if endpoint.device.connection != nil {
                // vhost-user has one front-end per socket: a second one is turned away at once.
                endpoint.device.logger.warning("second front-end connection refused: a session is active")
                socket.close()
                continue
            }
            startSession(endpoint, socket)
        }
    }

    /// accept failed (out of fds or memory): stop watching the listener for a while instead
    /// of waking for it again at once, and say so once per failure streak (and every 100th).
    private func pauseAccepting(_ endpoint: Endpoint, _ listener: FileDescriptor, _ error: SystemError) {
        endpoint.acceptFailures += 1
        if endpoint.acceptFailures == 1 || endpoint.acceptFailures % 100 == 0 {
            endpoint.device.logger.warning("accept failed (\(endpoint.acceptFailures) in a row): \(error); pausing \(Self.acceptPauseMilliseconds) ms")
        }
        epoll.remove(listener.rawValue)
        endpoint.acceptResumesAt = MonotonicClock.nanoseconds() + Self.acceptPauseMilliseconds * 1_000_000
        watchDeadline(endpoint)
    }

    private func resumeAccepting(_ endpoint: Endpoint) {
        endpoint.acceptResumesAt = nil
        guard let listener = endpoint.listener else { return }
        do {
            try epoll.add(listener.rawValue, events: Epoll.input | Epoll.peerHangup, token: endpoint.listenerToken)
        } catch {
            pauseAccepting(endpoint, listener, error)
        }
    }

    private func startSession(_ endpoint: Endpoint, _ socket: FileDescriptor) {
        watch(endpoint, VhostUserConnection(device: endpoint.device, socket: socket))
    }

    /// Registers a session's socket with the loop (a new one, or one handed over).
    func watch(_ endpoint: Endpoint, _ connection: VhostUserConnection) {
        let socket = connection.socket
        connection.willClose = { [unowned self] closing in
            self.unregister(fd: closing.socket.rawValue) {
                if case .connection(_, let other) = $0 { return other === closing }
                return false
            }
        }
        do {
            try register(socket.rawValue, .connection(endpoint, connection))
        } catch {
            connection.close(reason: .socketError("epoll: \(error)"))
            sessionEnded(endpoint)
        }
    }

    private func sessionEnded(_ endpoint: Endpoint) {
        guard endpoints[ObjectIdentifier(endpoint.device)] != nil else { return }
        switch endpoint.device.configuration.mode {
        case .server:
            endpoint.device.endpointState = .listening
        case .client:
            endpoint.device.endpointState = .connecting
            endpoint.retryMilliseconds = Self.initialRetryMilliseconds
            endpoint.nextAttempt = MonotonicClock.nanoseconds() + UInt64(Self.initialRetryMilliseconds) * 1_000_000
            watchDeadline(endpoint)
        }
    }

    func attemptConnect(_ endpoint: Endpoint) {
        endpoint.nextAttempt = nil
        let path = endpoint.device.configuration.socketPath
        do {
            let socket = try UnixSocket.connect(path: path)
            endpoint.retryMilliseconds = Self.initialRetryMilliseconds
            endpoint.connectFailures = 0
            endpoint.device.logger.info("connected", metadata: ["socket": "\(path)"])
            startSession(endpoint, socket)
        } catch {
            if endpoint.connectFailures == 0 {
                endpoint.device.logger.info("cannot connect yet, retrying with backoff: \(error)", metadata: ["socket": "\(path)"])
            }
            endpoint.connectFailures += 1
            endpoint.nextAttempt = MonotonicClock.nanoseconds() + UInt64(endpoint.retryMilliseconds) * 1_000_000
            watchDeadline(endpoint)
            endpoint.retryMilliseconds = min(endpoint.retryMilliseconds * 2, Self.maxRetryMilliseconds)
        }
    }

    /// Every place that sets a deadline calls this; `runTimers` drops the endpoint once it has none.
    private func watchDeadline(_ endpoint: Endpoint) {
        timed[ObjectIdentifier(endpoint.device)] = endpoint
    }

    private func nextTimeout() -> Int32 {
        let deadlines = timed.values.compactMap(\.nextAttempt) + timed.values.compactMap(\.acceptResumesAt)
        guard let earliest = deadlines.min() else { return Self.maxWaitMilliseconds }
        let now = MonotonicClock.nanoseconds()
        guard earliest > now else { return 0 }
        return Int32(min((earliest - now + 999_999) / 1_000_000, UInt64(Self.maxWaitMilliseconds)))
    }

    private func runTimers() {
        guard !timed.isEmpty else { return }
        let now = MonotonicClock.nanoseconds()
        for (key, endpoint) in timed {
            if let due = endpoint.nextAttempt, due <= now, endpoint.device.connection == nil {
                attemptConnect(endpoint)
            }
            if let due = endpoint.acceptResumesAt, due <= now { resumeAccepting(endpoint) }
            if endpoint.nextAttempt == nil && endpoint.acceptResumesAt == nil { timed[key] = nil }
        }
    }

    private func remove(_ device: VhostUserDevice) {
        guard let endpoint = endpoints.removeValue(forKey: ObjectIdentifier(device)) else { return }
        timed[ObjectIdentifier(device)] = nil
        deviceNames.remove(device.name)
        device.connection?.close(reason: nil)
        if let listener = endpoint.listener {
            // Its one registration, by token (no scan of every registration).
            epoll.remove(listener.rawValue)
            registrations[endpoint.listenerToken] = nil
            listener.close()
            endpoint.listener = nil
            // Only our own socket: a file someone put there since is left alone.
            if FileSystem.kind(at: device.configuration.socketPath) == .socket {
                FileSystem.remove(device.configuration.socketPath)
            }
        }
        device.endpointState = .stopped
        device.logger.info("removed")
    }
}

/// Where `perform` leaves the result for the waiting thread.
private final class PerformResult<T: Sendable, E: Error>: Sendable {
    let result = Mutex<Result<T, E>?>(nil)
}
