import Foundation

/// A private OVS-DPDK (ovsdb-server and the DPDK build of ovs-vswitchd) with one netdev
/// bridge (default flow NORMAL: MAC learning): DPDK's own vhost library as a reference
/// back-end for tests that must tell the switch's faults from the rest of the rig.
/// Database, run directory, sockets and logs live in a scratch directory; the system
/// service is never used. Needs hugepages (scripts/setup.sh) and Debian's
/// openvswitch-switch-dpdk (Benchmarks/run.sh installs it).
public final class OvsDpdkBridge {
    public static let vswitchd = "/usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk"
    static let tools = ["/usr/sbin/ovsdb-server", "/usr/bin/ovsdb-tool", "/usr/bin/ovs-vsctl"]

    public let directory: String
    public let runDirectory: String
    let environment: [String: String]
    let prefix: String
    var processes: [Process] = []

    /// Why OVS-DPDK cannot run here, or nil.
    public static func skipReason() -> String? {
        for tool in tools + [vswitchd] where !FileManager.default.isExecutableFile(atPath: tool) {
            return "\(tool) not installed (apt-get install openvswitch-switch-dpdk)"
        }
        return nil
    }

    /// Starts both daemons and waits for DPDK to initialise. The PMD thread runs on `pmdCPU`,
    /// everything else on `controlCPU`.
    public init(tag: String, pmdCPU: Int = 1, controlCPU: Int = 0) throws {
        prefix = "vsovs\(tag)\(getpid())"
        directory = "/tmp/\(prefix)"
        runDirectory = directory + "/run"
        try? FileManager.default.removeItem(atPath: directory)
        try FileManager.default.createDirectory(atPath: runDirectory, withIntermediateDirectories: true)
        var environment = ProcessInfo.processInfo.environment
        environment["OVS_RUNDIR"] = runDirectory   // pid files, control and vhost sockets
        environment["OVS_DBDIR"] = directory
        environment["OVS_LOGDIR"] = directory
        self.environment = environment
        do {
            let database = directory + "/conf.db"
            try run(["/usr/bin/ovsdb-tool", "create", database, "/usr/share/openvswitch/vswitch.ovsschema"])
            try spawn(["/usr/bin/taskset", "-c", "\(controlCPU)", "/usr/sbin/ovsdb-server", database,
                       "--remote=punix:\(runDirectory)/db.sock", "--pidfile=\(runDirectory)/ovsdb-server.pid",
                       "--unixctl=\(runDirectory)/ovsdb-server.ctl", "--log-file=\(directory)/ovsdb-server.log"])
            try waitForPath(runDirectory + "/db.sock")
            try vsctl("--no-wait", "init")
            try vsctl("--no-wait", "set", "Open_vSwitch", ".", "other_config:dpdk-init=true",
                      "other_config:dpdk-lcore-mask=0x\(String(1 << controlCPU, radix: 16))",
                      "other_config:pmd-cpu-mask=0x\(String(1 << pmdCPU, radix: 16))",
                      "other_config:dpdk-socket-mem=512",
                      "other_config:dpdk-extra=\"--file-prefix=\(prefix) --no-pci --huge-unlink\"")
            try spawn(["/usr/bin/taskset", "-c", "\(controlCPU)", Self.vswitchd, "unix:\(runDirectory)/db.sock",
                       "--pidfile=\(runDirectory)/ovs-vswitchd.pid", "--log-file=\(directory)/ovs-vswitchd.log"])
            try vsctl("--timeout=60", "wait-until", "Open_vSwitch", ".", "dpdk_initialized=true")
        } catch {
            stop()
            throw error
        }
    }

    /// A netdev bridge `br0` with a dpdkvhostuser port per name (OVS listens; QEMU connects
    /// to the returned socket paths) and the given kernel interfaces as system ports.
    public func addBridge(vhostPorts: [String], kernelInterfaces: [String]) throws -> [String] {
        try vsctl("add-br", "br0", "--", "set", "bridge", "br0", "datapath_type=netdev")
        for name in vhostPorts { try vsctl("add-port", "br0", name, "--", "set", "Interface", name, "type=dpdkvhostuser") }
        for interface in kernelInterfaces { try vsctl("add-port", "br0", interface) }
        let sockets = vhostPorts.map { runDirectory + "/" + $0 }
        for socket in sockets { try waitForPath(socket) }
        return sockets
    }

    /// The last lines of ovs-vswitchd's log, for failure messages.
    public var logTail: String {
        let text = (try? String(contentsOfFile: directory + "/ovs-vswitchd.log", encoding: .utf8)) ?? ""
        return text.split(separator: "\n").suffix(40).joined(separator: "\n")
    }

    public func stop() {
        for process in processes.reversed() where process.isRunning {
            process.terminate()
            let deadline = Date().addingTimeInterval(5)
            while process.isRunning && Date() < deadline { usleep(20_000) }
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        }
        processes = []
        try? FileManager.default.removeItem(atPath: "/var/run/dpdk/\(prefix)")
    }

    deinit { stop() }

    @discardableResult
    func vsctl(_ arguments: String...) throws -> String {
        try run(["/usr/bin/ovs-vsctl", "--db=unix:\(runDirectory)/db.sock"] + arguments)
    }

    @discardableResult
    func run(_ command: [String]) throws -> String {
        let (status, output) = try NetworkNamespaceFixture.run(command, check: false, environment: environment)
        guard status == 0 else {
            throw QemuGuest.QemuError("\(command.prefix(4).joined(separator: " ")) failed (\(status)): \(output)\n\(logTail)")
        }
        return output
    }

    func spawn(_ command: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: command[0])
        process.arguments = Array(command.dropFirst())
        process.environment = environment
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        processes.append(process)
    }

    func waitForPath(_ path: String, timeout: TimeInterval = 30) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while !FileManager.default.fileExists(atPath: path) {
            if let exited = processes.first(where: { !$0.isRunning }) {
                throw QemuGuest.QemuError("\(exited.executableURL?.lastPathComponent ?? "?") exited before \(path) appeared\n\(logTail)")
            }
            guard Date() < deadline else { throw QemuGuest.QemuError("no \(path) after \(Int(timeout)) s\n\(logTail)") }
            usleep(50_000)
        }
    }
}
