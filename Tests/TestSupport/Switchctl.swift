import Foundation

/// Runs the built `vhost-switchctl` against a daemon's API (its unix socket, or a URL),
/// to completion (`run`: exit status, stdout, stderr) or in the background (`start`, for
/// `events --follow`: its output so far, then `stop`).
///
///     let ctl = Switchctl(api: daemon.apiSocketPath)
///     let ports = try ctl.run(["ports", "--json"])      // ports.status, ports.json
public struct Switchctl: Sendable {
    public static var executablePath: String { BuiltProduct.path("vhost-switchctl") }

    /// What `--api` is given (nil: none, the built-in default).
    public var api: String?

    public init(api: String?) { self.api = api }

    public struct Outcome: CustomStringConvertible {
        public var status: Int32
        public var stdout: String
        public var stderr: String
        /// stdout as JSON (any top-level value), nil when it does not parse.
        public var json: Any? { try? JSONSerialization.jsonObject(with: Data(stdout.utf8), options: [.fragmentsAllowed]) }
        public var object: [String: Any] { json as? [String: Any] ?? [:] }
        public var description: String { "exit \(status)\nstdout:\n\(stdout)\nstderr:\n\(stderr)" }
    }

    func arguments(_ arguments: [String]) -> [String] {
        arguments + (api.map { ["--api", $0] } ?? [])
    }

    /// Runs `vhost-switchctl ARGUMENTS --api API` until it exits (killed after `timeout`).
    public func run(_ arguments: [String], timeout: TimeInterval = 20) throws -> Outcome {
        let running = try start(arguments)
        let deadline = Date().addingTimeInterval(timeout)
        while running.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.01) }
        return running.stop()
    }

    /// Starts `vhost-switchctl ARGUMENTS --api API` and returns at once.
    public func start(_ arguments: [String]) throws -> Running {
        try Running(arguments: self.arguments(arguments))
    }

    /// A command left running (`events --follow`).
    public final class Running {
        private let process = Process()
        private let stdout = OutputCollector()
        private let stderr = OutputCollector()

        init(arguments: [String]) throws {
            process.executableURL = URL(fileURLWithPath: Switchctl.executablePath)
            process.arguments = arguments
            let outPipe = Pipe(), errPipe = Pipe()
            process.standardOutput = outPipe
            process.standardError = errPipe
            stdout.readUntilEnd(outPipe.fileHandleForReading)
            stderr.readUntilEnd(errPipe.fileHandleForReading)
            try process.run()
        }

        deinit { stop() }

        public var output: String { stdout.text }
        public var errorOutput: String { stderr.text }
        public var isRunning: Bool { process.isRunning }

        /// Waits until stdout holds every one of `texts`; false after `timeout`.
        public func waitForOutput(containing texts: [String], timeout: TimeInterval = 10) -> Bool {
            let deadline = Date().addingTimeInterval(timeout)
            while Date() < deadline {
                let now = output
                if texts.allSatisfy(now.contains) { return true }
                if !process.isRunning { return texts.allSatisfy(output.contains) }
                Thread.sleep(forTimeInterval: 0.02)
            }
            return false
        }

        /// SIGTERM (when still running), the exit, and everything it wrote.
        @discardableResult
        public func stop() -> Outcome {
            if process.isRunning { process.terminate() }
            process.waitUntilExit()
            for collector in [stdout, stderr] { collector.waitForEnd(timeout: 5) }
            return Outcome(status: process.terminationStatus, stdout: stdout.text, stderr: stderr.text)
        }
    }
}
