import Foundation

/// The shell scripts in deploy/ (systemd's ExecReload, the DaemonSet container's command and
/// preStop), run as systemd or the kubelet would run them.
public enum DeployScript {
    /// deploy/`relative` in this checkout.
    public static func path(_ relative: String) -> String {
        QemuGuest.packageRoot + "/deploy/" + relative
    }

    /// Starts `executable` with the test's environment plus `environment`; stdout discarded.
    public static func launch(_ executable: String, _ arguments: [String], environment: [String: String] = [:]) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        return process
    }

    public struct StillRunning: Error, CustomStringConvertible {
        public var seconds: TimeInterval
        public var description: String { "still running after \(seconds) s" }
    }

    /// Runs `executable` to its exit status, which a wrapper shell writes to a file: a process
    /// it leaves running (a daemon that took over) keeps Foundation from seeing it exit.
    public static func run(_ executable: String, _ arguments: [String], environment: [String: String] = [:],
                           timeout: TimeInterval = 30) throws -> Int32 {
        let file = NSTemporaryDirectory() + "script-status-" + String(UInt32.random(in: 0...UInt32.max), radix: 36)
        defer { try? FileManager.default.removeItem(atPath: file) }
        _ = try launch("/bin/sh", ["-c", "\"$@\"; echo $? > \(file).tmp && mv \(file).tmp \(file)", "sh", executable] + arguments,
                       environment: environment)
        let deadline = Date().addingTimeInterval(timeout)
        while !FileManager.default.fileExists(atPath: file) {
            guard Date() < deadline else { throw StillRunning(seconds: timeout) }
            Thread.sleep(forTimeInterval: 0.02)
        }
        return Int32(try String(contentsOfFile: file, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
    }

    /// Waits until `process` exits; its status, or `StillRunning` (it is then terminated).
    public static func waitForExit(_ process: Process, timeout: TimeInterval = 10) throws -> Int32 {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.02) }
        guard !process.isRunning else {
            process.terminate()
            throw StillRunning(seconds: timeout)
        }
        return process.terminationStatus
    }
}
