import ArgumentParser
import Dataplane
import Logging
import ManagementPlane
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

    @Option(name: .long, help: "Seconds before an idle MAC table entry is removed.")
    var macAgingSeconds: UInt32 = 300

    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel = "info"

    var resolvedSocketDir: String { socketDir ?? runDir + "/sockets" }

    func validate() throws {
        guard (1...64).contains(pmdThreads) else { throw ValidationError("--pmd-threads must be 1...64") }
        if let pmdCpus, Self.parseCPUList(pmdCpus) == nil { throw ValidationError("--pmd-cpus must be a list such as 1 or 0,2-3") }
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("--log-level must be one of trace, debug, info, notice, warning, error, critical") }
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
        let level = Logger.Level(rawValue: logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "vhost-switchd")
        let signals = SignalWaiter()

        var switchConfiguration = Switch.Configuration()
        switchConfiguration.pollThreads = pmdThreads
        switchConfiguration.pollThreadCPUs = pmdCpus.flatMap(Self.parseCPUList) ?? []
        switchConfiguration.busyPoll = busyPoll
        switchConfiguration.macAgingSeconds = macAgingSeconds

        let fabric = try Switch(configuration: switchConfiguration)
        try fabric.start()
        let controlLoop = try VhostUserControlLoop(logger: logger)
        try controlLoop.start()
        let socketDirectory = SocketDirectory(root: resolvedSocketDir)
        try FileSystem.makeDirectoryTree(socketDirectory.root)
        let ports = PortManager(fabric: fabric, controlLoop: controlLoop, socketDirectory: socketDirectory, logger: logger)

        if let config {
            try ConfigFile.load(path: config).forEach { spec in
                do {
                    try ports.create(spec)
                } catch {
                    throw ValidationError("\(config): port \(spec.name): \(error.message)")
                }
            }
        }
        logger.info("vhost-switchd running", metadata: [
            "socket-dir": "\(socketDirectory.root)", "pmd-threads": "\(pmdThreads)",
            "polling": "\(busyPoll ? "busy" : "adaptive")", "ports": "\(ports.allPorts.count)",
        ])

        let signal = signals.wait()
        logger.info("shutting down on signal \(signal)")
        ports.deleteAll()
        controlLoop.stop()
        fabric.stop()
    }
}
