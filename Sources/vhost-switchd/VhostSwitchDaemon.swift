import ArgumentParser
import Dataplane
import Logging
import ManagementPlane
import PortService
import VhostSystem
import VhostUser

@main
struct VhostSwitchDaemon: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vhost-switchd",
        abstract: "A vhost-user switch: VMs and DPDK containers on vhost-user sockets, the kernel on AF_PACKET, MAC learning between them.")

    @Option(name: .long, help: "JSON file with {\"ports\": [...]} created at start-up.")
    var config: String?

    @Option(name: .long, help: "Directory holding every vhost-user socket; socket paths are relative to it.")
    var socketDir: String?

    @Option(name: .long, help: "Directory for run-time files (the API socket).")
    var runDir = "/run/vhost-switch"

    @Option(name: .long, help: "Directory for persisted state.")
    var stateDir = "/var/lib/vhost-switch"

    @Option(name: .long, help: "Number of poll threads.")
    var pmdThreads = 1

    @Option(name: .long, help: "CPUs for the poll threads, e.g. 1 or 2,3 (thread i gets the i-th).")
    var pmdCpus: String?

    @Flag(name: .long, help: "Poll without ever sleeping (lowest latency, one core per poll thread always busy).")
    var busyPoll = false

    @Option(name: .long, help: "Adaptive polling: empty poll iterations before a poll thread sleeps until a guest kicks (fewer leave more CPU to guests on a shared host).")
    var idlePolls = 20_000

    @Option(name: .long, help: "With several poll threads: place the receive queues not pinned by rxq_affinity again by their measured load at most this often, in seconds (0: never).")
    var rxqRebalanceInterval = 10

    @Option(name: .long, help: "Seconds before an idle MAC table entry is removed.")
    var macAgingSeconds: UInt32 = 300

    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error, critical (changeable at run time: PUT /v1/log-level).")
    var logLevel = "info"

    @Option(name: .long, help: "Log format on standard error: text, or json (one object per line: time, level, label, message, metadata).")
    var logFormat = "text"

    @Option(name: .long, help: "The management API's unix socket (mode 0660). Default: <run-dir>/api.sock.")
    var apiSocket: String?

    @Option(name: .long, help: "Also serve the API on TCP, e.g. 127.0.0.1:9870 or [::1]:9870 (needs --api-token-file, or --insecure-tcp on loopback).")
    var listen: String?

    @Option(name: .long, help: "File holding the bearer token TCP clients must send (Authorization: Bearer <token>); mode 0600 or 0400, re-read on SIGHUP.")
    var apiTokenFile: String?

    @Flag(name: .long, help: "Take over from the daemon running with this --run-dir (same flags): its ports, sessions, guest memory and API listeners, without the guests noticing. It exits 0 once this process serves; if this one fails first, it resumes and this one exits non-zero.")
    var takeover = false

    @OptionGroup var management: ManagementOptions

    var resolvedSocketDir: String { socketDir ?? runDir + "/sockets" }
    var resolvedAPISocket: String { apiSocket ?? runDir + "/api.sock" }

    func validate() throws {
        guard (1...64).contains(pmdThreads) else { throw ValidationError("--pmd-threads must be 1...64") }
        guard (1...100_000_000).contains(idlePolls) else { throw ValidationError("--idle-polls must be 1...100000000") }
        guard (0...86_400).contains(rxqRebalanceInterval) else { throw ValidationError("--rxq-rebalance-interval must be 0...86400") }
        if let pmdCpus, Self.parseCPUList(pmdCpus) == nil { throw ValidationError("--pmd-cpus must be a list such as 1 or 0,2-3") }
        if let listen, TCPSocket.Address(parsing: listen) == nil {
            throw ValidationError("--listen must be an IP address and port such as 127.0.0.1:9870 or [::1]:9870")
        }
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("--log-level must be one of trace, debug, info, notice, warning, error, critical") }
        guard LogLineHandler.Format(rawValue: logFormat) != nil else { throw ValidationError("--log-format must be text or json") }
    }

    static func parseCPUList(_ text: String) -> [Int]? {
        var cpus: [Int] = []
        for part in text.split(separator: ",") {
            let bounds = part.split(separator: "-")
            guard let low = bounds.first.flatMap({ Int($0) }), low >= 0 else { return nil }
            let high = bounds.count == 2 ? Int(bounds[1]) : low
            guard let high, high >= low, bounds.count <= 2 else { return nil }
            cpus.append(contentsOf: low...high)
        }
        return cpus.isEmpty ? nil : cpus
    }

    func run() throws {
        let level = RuntimeLogLevel(Logger.Level(rawValue: logLevel) ?? .info)
        let format = LogLineHandler.Format(rawValue: logFormat) ?? .text
        LoggingSystem.bootstrap { label in LogLineHandler(label: label, format: format, level: level) }
        let logger = Logger(label: "vhost-switchd")
        let signals = SignalWaiter()
        let serviceManager = ServiceNotifier(logger: logger)

        var switchConfiguration = Switch.Configuration()
        switchConfiguration.pollThreads = pmdThreads
        switchConfiguration.pollThreadCPUs = pmdCpus.flatMap(Self.parseCPUList) ?? []
        switchConfiguration.busyPoll = busyPoll
        switchConfiguration.idlePollsBeforeSleep = idlePolls
        switchConfiguration.macAgingSeconds = macAgingSeconds
        switchConfiguration.rxqRebalanceIntervalSeconds = rxqRebalanceInterval

        let fabric = try Switch(configuration: switchConfiguration)
        try fabric.start()
        let controlLoop = try VhostUserControlLoop(logger: logger)
        let socketDirectory = SocketDirectory(root: resolvedSocketDir)
        try FileSystem.makeDirectoryTree(socketDirectory.root)
        let events = EventHub(limits: management.eventLimits)
        let ports = PortService(fabric: fabric, controlLoop: controlLoop, socketDirectory: socketDirectory, logger: logger,
                                emit: events.handler)
        let store = PortStateStore(directory: stateDir, logger: logger)
        var handover: HandoverTarget?
        var gapMilliseconds: Int64 = 0
        if takeover {
            // Any failure before the commit ends this process and nothing else: the old daemon
            // still owns every socket file and resumes.
            do {
                let target = try HandoverTarget.receive(runDir: runDir)
                events.continueNumbering(after: target.document.eventSequence)
                events.publish(SwitchEvent(.handoverStarted, port: nil, data: ["ports": .integer(Int64(target.document.ports.count))]))
                try target.adoptPorts(into: ports)
                handover = target
            } catch {
                throw HandoverTarget.Failure(description: "takeover failed: \(error)")
            }
        }
        let restored = takeover ? [] : StateRestorer.restore(from: store, into: ports, logger: logger)

        if let config, !takeover {
            for spec in try ConfigFile.load(path: config) {
                if restored.contains(spec.name) {
                    logger.info("port \(spec.name) from \(config) already restored from the saved state; the saved settings win")
                    continue
                }
                do {
                    try ports.create(spec)
                } catch {
                    throw ValidationError("\(config): port \(spec.name): \(error.message)")
                }
            }
        }
        logger.info("vhost-switchd running", metadata: [
            "socket-dir": "\(socketDirectory.root)", "pmd-threads": "\(pmdThreads)",
            "polling": "\(busyPoll ? "busy" : "adaptive")", "ports": "\(ports.portCount)",
        ])

        var apiConfiguration = ManagementServer.Configuration(socketPath: resolvedAPISocket)
        apiConfiguration.listen = listen.flatMap(TCPSocket.Address.init(parsing:))
        if let apiTokenFile {
            do { apiConfiguration.token = try APITokenSource(path: apiTokenFile) } catch { throw ValidationError(error.description) }
        }
        management.apply(to: &apiConfiguration)
        if let handover {
            do { apiConfiguration.inherited = try handover.apiListeners() } catch { throw HandoverTarget.Failure(description: "takeover failed: \(error)") }
        }
        // From here on every change is saved. The config file's new ports are saved now; a
        // saved port that could not be restored stays saved.
        store.saveMissing(ports.specs)
        ports.addObserver(store)
        let readiness = management.readiness
        let api = ManagementAPI(service: ports, events: events, logger: logger, readiness: readiness, logLevel: level)
        let server: ManagementServer
        do { server = try ManagementServer(api: api, configuration: apiConfiguration, logger: logger) } catch {
            if takeover { throw HandoverTarget.Failure(description: "takeover failed: \(error)") }
            ports.deleteAll()
            controlLoop.shutdown()
            fabric.stop()
            throw ValidationError(error.description)
        }

        if let handover {
            let predecessorExited: Bool
            do { predecessorExited = try handover.commit() } catch { throw HandoverTarget.Failure(description: "takeover failed: \(error)") }
            if !predecessorExited { logger.warning("the previous daemon did not exit within 10 s of the commit") }
            ports.startAdoptedPorts()
            // From the old daemon's quiescing to this process's first poll.
            gapMilliseconds = handover.gapMilliseconds
            // Its saved ports that were still pending: ours to retry now (after the commit, so a
            // failed takeover never made a socket the old daemon does not know).
            for spec in handover.document.pendingPorts { _ = try? ports.restore(spec) }
            logger.notice("took over from the previous daemon", metadata: ["ports": "\(ports.portCount)", "gap-ms": "\(gapMilliseconds)"])
            events.publish(SwitchEvent(.handoverCompleted, port: nil, data: ["gap_ms": .integer(gapMilliseconds)]))
        }
        // Restored (or taken over) and answering: systemd may start what depends on the switch.
        serviceManager.ready(afterTakeover: handover != nil, readiness: readiness) { [ports] in ports.progressCounters }

        // Serving without it is better than not serving: only a later takeover needs it.
        var handoverSource: HandoverSource?
        do {
            handoverSource = try HandoverSource(runDir: runDir, ports: ports, events: events, server: server,
                                                serviceManager: serviceManager, logger: logger)
        } catch {
            logger.error("cannot listen for a hand-over in \(runDir) (\(error)); --takeover will not find this daemon")
        }

        let signal = SignalLoop.waitForStop(signals, token: apiConfiguration.token, logger: logger)
        logger.info("shutting down on signal \(signal)")
        serviceManager.stopping()
        handoverSource?.removeSocketFile(runDir: runDir)
        server.stop()
        ports.deleteAll()
        controlLoop.shutdown()
        fabric.stop()
    }
}
