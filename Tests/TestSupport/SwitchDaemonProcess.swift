import Foundation
import Glibc

/// The one way tests run the real `vhost-switchd` (the binary built next to the test bundle):
/// in its own temporary run, socket and state directories (removed when the last rig using
/// them goes), with a config file, extra flags, an optional TCP listener and API token. It
/// logs to a file per launch (`output`), stops with SIGTERM then SIGKILL (`shutdownHung` says
/// SIGKILL was needed), crashes with kill -9, runs to exit for start-up refusals, and reads the
/// daemon's pid, open fds, RSS and CPU time from /proc. Talk to it with `api` (a
/// `SwitchAPIClient` on its unix socket) or `tcpAPI()`.
///
///     let daemon = try SwitchDaemonProcess(config: json, extraArguments: ["--pmd-cpus", "1"])  // launched
///     try daemon.waitUntilHealthy()
///     let reply = try daemon.api.request("GET", "/v1/ports")
///
///     let rig = try SwitchDaemonProcess()        // directories only: write state files first
///     try rig.start(extraArguments: ["--pmd-threads", "1"], listenTCP: true, token: "t")
///
/// With `networkNamespace` the daemon runs in that namespace (`ip netns exec`, which execs it,
/// so `pid` is still the daemon's): a node of its own. Its API socket and socket directory are
/// plain files, so the tests reach them from the host namespace as usual.
public final class SwitchDaemonProcess {
    /// The temporary directory holding run/, sockets/, state/, the logs and the token file.
    public let baseDirectory: String
    public let runDirectory: String
    public let socketDirectory: String
    public let stateDirectory: String
    public var apiSocketPath: String { runDirectory + "/api.sock" }
    /// The daemon of the latest `start` (nil before the first).
    public private(set) var process: Process?
    /// The full argument list of the latest `start`.
    public private(set) var arguments: [String] = []
    /// The port of `--listen 127.0.0.1:PORT` once started with `listenTCP` (kept across starts).
    public private(set) var tcpPort: Int?
    /// The bearer token of the latest start with one.
    public private(set) var token: String?
    /// True once a `stop` had to SIGKILL a daemon that did not exit within its time-out.
    public private(set) var shutdownHung = false
    /// Variables added to the inherited environment of every later launch (NOTIFY_SOCKET, ...).
    public var environment: [String: String] = [:]
    /// The network namespace (a name under /var/run/netns) every launch runs in; nil: the test's own.
    public let networkNamespace: String?
    private let directories: TemporaryDirectories
    private var logFile: String?

    /// The daemon built by the same `swift build` as the tests, or the one VHOST_SWITCHD names
    /// (a release build, or an older binary to show that a test fails without a fix).
    public static var executablePath: String {
        ProcessInfo.processInfo.environment["VHOST_SWITCHD"] ?? BuiltProduct.path("vhost-switchd")
    }

    /// Why the rig cannot run here (no daemon built, no curl for the API client); nil when it can.
    public static var unavailableReason: String? {
        if !FileManager.default.isExecutableFile(atPath: executablePath) {
            return "vhost-switchd is not built next to the tests (\(executablePath)); run swift build first"
        }
        if !FileManager.default.isExecutableFile(atPath: SwitchAPIClient.curl) { return "\(SwitchAPIClient.curl) is not installed" }
        return nil
    }

    /// Fresh temporary directories (or those of `previous`, for a restart that must find its
    /// state and sockets); nothing is started.
    public init(reuseDirectoriesOf previous: SwitchDaemonProcess? = nil, networkNamespace: String? = nil) throws {
        self.networkNamespace = networkNamespace ?? previous?.networkNamespace
        directories = try previous?.directories ?? TemporaryDirectories()
        baseDirectory = directories.path
        runDirectory = baseDirectory + "/run"
        socketDirectory = baseDirectory + "/sockets"
        stateDirectory = baseDirectory + "/state"
        tcpPort = previous?.tcpPort
    }

    /// Starts the daemon at once (it does not wait for it): `config` (a JSON document) is
    /// written to a file and passed with --config; `extraArguments` come after the directory flags.
    public convenience init(config: String? = nil, extraArguments: [String] = [], reuseDirectoriesOf previous: SwitchDaemonProcess? = nil) throws {
        try self.init(reuseDirectoriesOf: previous)
        try start(config: config, extraArguments: extraArguments)
    }

    deinit { crash() }

    // MARK: Starting

    /// Launches the daemon (a running one is killed first) with the directory flags, the
    /// config, `--listen 127.0.0.1:PORT` when `listenTCP` (a random port, the same on later
    /// starts), `--api-token-file` (a mode 0600 file) when `token` is given, else
    /// `--insecure-tcp` with `listenTCP`, then `extraArguments`. Does not wait.
    public func start(config: String? = nil, extraArguments: [String] = [], listenTCP: Bool = false, token: String? = nil) throws {
        var arguments = ["--run-dir", runDirectory, "--socket-dir", socketDirectory, "--state-dir", stateDirectory]
        if let config {
            let path = runDirectory + "/config.json"
            try config.write(toFile: path, atomically: true, encoding: .utf8)
            arguments += ["--config", path]
        }
        if listenTCP {
            let port = tcpPort ?? UnusedTCPPort.pick()
            tcpPort = port
            arguments += ["--listen", "127.0.0.1:\(port)"]
            if token == nil { arguments.append("--insecure-tcp") }
        }
        if let token {
            self.token = token
            arguments += ["--api-token-file", try writeTokenFile(token)]
        }
        arguments += extraArguments
        crash()
        self.arguments = arguments
        process = try launch(arguments)
    }

    /// Writes `token` to `<base>/token` with mode 0600 (the daemon refuses a file others may
    /// read) and returns its path.
    @discardableResult
    public func writeTokenFile(_ token: String, permissions: Int = 0o600) throws -> String {
        let file = baseDirectory + "/token"
        try (token + "\n").write(toFile: file, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: permissions], ofItemAtPath: file)
        return file
    }

    /// Waits until GET /v1/health answers 200 on the unix socket; throws with the log when the
    /// daemon exits first or the time-out passes.
    public func waitUntilHealthy(timeout: TimeInterval = 15) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            guard isRunning else { throw DaemonError("vhost-switchd exited (\(process?.terminationStatus ?? -1)) before its API answered:\n\(output)") }
            if FileManager.default.fileExists(atPath: apiSocketPath), (try? api.request("GET", "/v1/health"))?.status == 200 { return }
            Thread.sleep(forTimeInterval: 0.05)
        }
        throw DaemonError("the API at \(apiSocketPath) did not answer within \(timeout) s:\n\(output)")
    }

    /// Runs the binary with exactly `arguments` until it exits (start-up refusals), killing it
    /// after `timeout`; its exit status and what it logged. Not this rig's daemon (`process`).
    public func runToExit(_ arguments: [String], timeout: TimeInterval = 10) throws -> (status: Int32, output: String) {
        let process = try launch(arguments)
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        if process.isRunning { process.terminate() }
        process.waitUntilExit()
        return (process.terminationStatus, output)
    }

    /// Starts `vhost-switchd --takeover` with `previous`'s directories and flags: the new
    /// process of a live hand-over. `environment` adds variables (VHOST_SWITCH_HANDOVER_CRASH_AT).
    /// Does not wait.
    public static func takingOver(from previous: SwitchDaemonProcess, environment: [String: String] = [:]) throws -> SwitchDaemonProcess {
        let rig = try SwitchDaemonProcess(reuseDirectoriesOf: previous)
        rig.arguments = previous.arguments + ["--takeover"]
        rig.process = try rig.launch(rig.arguments, environment: environment)
        return rig
    }

    /// Waits until the daemon exits; its status (a signal's number when killed by one), or nil
    /// when it still runs after `timeout`.
    public func waitForExit(timeout: TimeInterval = 10) -> Int32? {
        guard let process else { return nil }
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.01) }
        return process.isRunning ? nil : process.terminationStatus
    }

    /// Starts the binary with stdout and stderr in a new log file, which `output` then reads.
    private func launch(_ arguments: [String], environment: [String: String] = [:]) throws -> Process {
        let file = baseDirectory + "/daemon-\(String(UInt32.random(in: 0...UInt32.max), radix: 36)).log"
        guard FileManager.default.createFile(atPath: file, contents: nil) else { throw DaemonError("cannot create \(file)") }
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: file))
        defer { try? handle.close() }
        let process = Process()
        if let networkNamespace {
            process.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
            process.arguments = ["netns", "exec", networkNamespace, Self.executablePath] + arguments
        } else {
            process.executableURL = URL(fileURLWithPath: Self.executablePath)
            process.arguments = arguments
        }
        process.standardOutput = handle
        process.standardError = handle
        // This rig's variables for every launch (`self.environment`), then this launch's own.
        let variables = self.environment.merging(environment) { $1 }
        if !variables.isEmpty { process.environment = ProcessInfo.processInfo.environment.merging(variables) { $1 } }
        logFile = file
        try process.run()
        return process
    }

    // MARK: Talking to it

    /// The REST API on the daemon's unix socket.
    public var api: SwitchAPIClient { SwitchAPIClient(socketPath: apiSocketPath) }

    /// The REST API on the TCP listener; throws when the daemon was not started with one.
    public func tcpAPI() throws -> SwitchAPIClient {
        guard let tcpPort else { throw DaemonError("the daemon was not started with a TCP listener") }
        return SwitchAPIClient(tcpPort: tcpPort)
    }

    // MARK: Looking at it

    public var pid: Int32 { process?.processIdentifier ?? 0 }
    /// What the latest launch (`start` or `runToExit`) logged so far.
    public var output: String { logFile.flatMap { try? String(contentsOfFile: $0, encoding: .utf8) } ?? "" }
    public var isRunning: Bool { process?.isRunning ?? false }

    public func socketPath(_ relative: String) -> String { socketDirectory + "/" + relative }

    /// Waits until `path` exists (a server socket is listening) or the timeout passes.
    public func waitForFile(_ path: String, timeout: TimeInterval = 10) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if FileManager.default.fileExists(atPath: path) { return }
            if !isRunning { throw DaemonError("daemon exited (\(process?.terminationStatus ?? -1)) before \(path) appeared:\n\(output)") }
            Thread.sleep(forTimeInterval: 0.02)
        }
        throw DaemonError("\(path) did not appear within \(timeout) s:\n\(output)")
    }

    /// Waits until the log contains `text`.
    public func waitForLog(_ text: String, timeout: TimeInterval = 10) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if output.contains(text) { return }
            Thread.sleep(forTimeInterval: 0.02)
        }
        throw DaemonError("log never said \"\(text)\" within \(timeout) s:\n\(output)")
    }

    /// Accumulated CPU time (user + system) in clock ticks, from /proc/PID/stat.
    public func cpuTicks() -> UInt64? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 13, let user = UInt64(fields[11]), let system = UInt64(fields[12]) else { return nil }
        return user + system
    }

    /// Open fds of the daemon (-1 when it cannot be read).
    public func openFileCount() -> Int {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").count) ?? -1
    }

    /// Resident set size in KiB, from /proc/PID/status (-1 when it cannot be read).
    public func residentKiB() -> Int {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }) else { return -1 }
        return Int(line.split(separator: " ", omittingEmptySubsequences: true)[1]) ?? -1
    }

    // MARK: Stopping

    /// SIGTERM and wait: a clean shutdown. After `timeout` SIGKILL, and `shutdownHung` is set
    /// (a hung shutdown fails the test instead of hanging the suite). Returns the exit status.
    @discardableResult
    public func stop(timeout: TimeInterval = 10) -> Int32 {
        guard let process else { return -1 }
        guard process.isRunning else { return process.terminationStatus }
        kill(process.processIdentifier, SIGTERM)
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.01) }
        if process.isRunning {
            shutdownHung = true
            kill(process.processIdentifier, SIGKILL)
        }
        process.waitUntilExit()
        return process.terminationStatus
    }

    /// kill -9: a crash, no clean-up at all (stale socket files stay behind).
    public func crash() {
        guard let process, process.isRunning else { return }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    public struct DaemonError: Error, CustomStringConvertible {
        public var description: String
        init(_ description: String) { self.description = description }
    }
}

/// A rig's directories, shared with the rigs that reuse them; removed with the last.
private final class TemporaryDirectories {
    let path: String

    init() throws {
        path = NSTemporaryDirectory() + "vsd-" + String(UInt32.random(in: 0...UInt32.max), radix: 36)
        for directory in ["run", "sockets", "state"] {
            try FileManager.default.createDirectory(atPath: path + "/" + directory, withIntermediateDirectories: true)
        }
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}
