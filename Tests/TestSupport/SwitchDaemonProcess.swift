import Foundation
import Glibc

/// Runs the real `vhost-switchd` binary (built next to the test bundle) in its own
/// temporary run, socket and state directories, and captures what it logs.
public final class SwitchDaemonProcess {
    public let runDirectory: String
    public let socketDirectory: String
    public let stateDirectory: String
    public private(set) var process: Process
    private let log = OutputCollector()
    public let arguments: [String]

    /// The daemon built by the same `swift build` as the tests, or the one VHOST_SWITCHD names
    /// (a release build, or an older binary to show that a test fails without a fix).
    public static var executablePath: String {
        if let path = ProcessInfo.processInfo.environment["VHOST_SWITCHD"] { return path }
        // The test runner and the daemon are built into the same products directory.
        let runner = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        let bundle = Bundle(for: SwitchDaemonProcess.self).bundleURL
        let candidates = [runner.appendingPathComponent("vhost-switchd").path,
                          bundle.appendingPathComponent("vhost-switchd").path,
                          bundle.deletingLastPathComponent().appendingPathComponent("vhost-switchd").path,
                          FileManager.default.currentDirectoryPath + "/.build/debug/vhost-switchd"]
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0) } ?? candidates[0]
    }

    /// Starts the daemon. `config` (a JSON document) is written to a file and passed with
    /// --config; `extraArguments` come after the directory flags.
    public init(config: String? = nil, extraArguments: [String] = [], reuseDirectoriesOf previous: SwitchDaemonProcess? = nil) throws {
        if let previous {
            runDirectory = previous.runDirectory
            socketDirectory = previous.socketDirectory
            stateDirectory = previous.stateDirectory
        } else {
            let base = NSTemporaryDirectory() + "vsd-" + String(UInt32.random(in: 0...UInt32.max), radix: 36)
            runDirectory = base + "/run"
            socketDirectory = base + "/sockets"
            stateDirectory = base + "/state"
            for directory in [runDirectory, socketDirectory, stateDirectory] {
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            }
        }
        var arguments = ["--run-dir", runDirectory, "--socket-dir", socketDirectory, "--state-dir", stateDirectory]
        if let config {
            let path = runDirectory + "/config.json"
            try config.write(toFile: path, atomically: true, encoding: .utf8)
            arguments += ["--config", path]
        }
        arguments += extraArguments
        self.arguments = arguments
        process = Process()
        try launch()
    }

    private func launch() throws {
        process = Process()
        process.executableURL = URL(fileURLWithPath: Self.executablePath)
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        log.attach(pipe.fileHandleForReading)
        try process.run()
    }

    deinit { terminate() }

    public var pid: Int32 { process.processIdentifier }
    public var output: String { log.text }
    public var isRunning: Bool { process.isRunning }

    public func socketPath(_ relative: String) -> String { socketDirectory + "/" + relative }

    /// Waits until `path` exists (a server socket is listening) or the timeout passes.
    public func waitForFile(_ path: String, timeout: TimeInterval = 10) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if FileManager.default.fileExists(atPath: path) { return }
            if !process.isRunning { throw DaemonError("daemon exited (\(process.terminationStatus)) before \(path) appeared:\n\(output)") }
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

    /// SIGTERM and wait: a clean shutdown. Returns the exit status.
    @discardableResult
    public func stop(timeout: TimeInterval = 10) -> Int32 {
        guard process.isRunning else { return process.terminationStatus }
        kill(process.processIdentifier, SIGTERM)
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.01) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL); process.waitUntilExit() }
        return process.terminationStatus
    }

    /// SIGKILL: a crash, leaving stale socket files behind.
    public func crash() {
        guard process.isRunning else { return }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    public func terminate() {
        if process.isRunning { crash() }
    }

    /// Accumulated CPU time (user + system) in clock ticks, from /proc/PID/stat.
    public func cpuTicks() -> UInt64? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 13, let user = UInt64(fields[11]), let system = UInt64(fields[12]) else { return nil }
        return user + system
    }

    public func openFileCount() -> Int {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").count) ?? -1
    }

    /// Resident set size in KiB, from /proc/PID/status.
    public func residentKiB() -> Int {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }) else { return -1 }
        return Int(line.split(separator: " ", omittingEmptySubsequences: true)[1]) ?? -1
    }

    public struct DaemonError: Error, CustomStringConvertible {
        public var description: String
        init(_ description: String) { self.description = description }
    }
}

/// Collects a pipe's output on a background queue (a full pipe would block the daemon).
final class OutputCollector: @unchecked Sendable {
    private let lock = NSLock()
    private var data = Data()

    func attach(_ handle: FileHandle) {
        handle.readabilityHandler = { [weak self] handle in
            let chunk = handle.availableData
            if chunk.isEmpty { handle.readabilityHandler = nil; return }
            self?.lock.lock()
            self?.data.append(chunk)
            self?.lock.unlock()
        }
    }

    var text: String {
        lock.lock()
        defer { lock.unlock() }
        return String(decoding: data, as: UTF8.self)
    }
}
