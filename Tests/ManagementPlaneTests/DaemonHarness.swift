import Foundation
import XCTest

/// A real `vhost-switchd` (the binary swift build put beside the test bundle) in its own
/// temporary run, socket and state directories, driven with /usr/bin/curl over its unix
/// socket (or TCP). Nothing is mocked: these tests see what an operator sees.
final class DaemonHarness {
    struct Response {
        var status: Int
        var headers: [String: String]
        var body: String

        var json: Any? { try? JSONSerialization.jsonObject(with: Data(body.utf8), options: [.fragmentsAllowed]) }
        var object: [String: Any] { json as? [String: Any] ?? [:] }
        var errorCode: String? { (object["error"] as? [String: Any])?["code"] as? String }
        var errorMessage: String { (object["error"] as? [String: Any])?["message"] as? String ?? "" }
    }

    static var binary: URL {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("vhost-switchd")
    }

    static var curl: String { "/usr/bin/curl" }

    let directory: URL
    var runDir: URL { directory.appendingPathComponent("run") }
    var socketDir: URL { directory.appendingPathComponent("sockets") }
    var stateDir: URL { directory.appendingPathComponent("state") }
    var apiSocket: String { runDir.appendingPathComponent("api.sock").path }
    var logFile: URL { directory.appendingPathComponent("daemon.log") }
    private(set) var process: Process?
    var tcpPort: Int?
    var token: String?

    init() throws {
        guard FileManager.default.isExecutableFile(atPath: Self.binary.path) else {
            throw XCTSkip("vhost-switchd is not built next to the tests (\(Self.binary.path)); run swift build first")
        }
        guard FileManager.default.isExecutableFile(atPath: Self.curl) else { throw XCTSkip("/usr/bin/curl is not installed") }
        directory = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("vs-mgmt-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    deinit {
        stop()
        try? FileManager.default.removeItem(at: directory)
    }

    /// Starts the daemon and waits until the API answers.
    func start(extraArguments: [String] = [], listenTCP: Bool = false, token: String? = nil) throws {
        var arguments = ["--run-dir", runDir.path, "--socket-dir", socketDir.path, "--state-dir", stateDir.path,
                         "--pmd-threads", "1", "--log-level", "info"]
        if listenTCP {
            let port = tcpPort ?? Int.random(in: 20000..<60000)
            tcpPort = port
            arguments += ["--listen", "127.0.0.1:\(port)"]
        }
        if let token {
            self.token = token
            let file = directory.appendingPathComponent("token")
            try (token + "\n").write(to: file, atomically: true, encoding: .utf8)
            arguments += ["--api-token-file", file.path]
        }
        arguments += extraArguments
        let process = try launch(arguments)
        self.process = process
        for _ in 0..<200 {
            if !process.isRunning { break }
            if FileManager.default.fileExists(atPath: apiSocket), (try? request("GET", "/v1/health").status) == 200 { return }
            Thread.sleep(forTimeInterval: 0.05)
        }
        throw HarnessError("vhost-switchd did not come up:\n\(log)")
    }

    /// Runs the binary to completion (for start-up refusals); returns exit status and output.
    func runToExit(_ arguments: [String]) throws -> (Int32, String) {
        let process = try launch(arguments)
        let deadline = Date().addingTimeInterval(10)
        while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        if process.isRunning { process.terminate(); process.waitUntilExit() }
        return (process.terminationStatus, log)
    }

    private func launch(_ arguments: [String]) throws -> Process {
        FileManager.default.createFile(atPath: logFile.path, contents: nil)
        let handle = try FileHandle(forWritingTo: logFile)
        handle.seekToEndOfFile()
        let process = Process()
        process.executableURL = Self.binary
        process.arguments = arguments
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        return process
    }

    var log: String { (try? String(contentsOf: logFile, encoding: .utf8)) ?? "" }
    var pid: Int32? { process?.processIdentifier }

    /// SIGTERM, then SIGKILL if the daemon has not exited within 10 seconds (a hung
    /// shutdown fails the test instead of hanging the suite).
    func stop() {
        guard let process, process.isRunning else { return }
        process.terminate()
        let deadline = Date().addingTimeInterval(10)
        while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.02) }
        if process.isRunning {
            shutdownHung = true
            kill(process.processIdentifier, SIGKILL)
        }
        process.waitUntilExit()
    }

    private(set) var shutdownHung = false

    /// kill -9: no clean-up at all, like a crash.
    func kill9() {
        guard let process, process.isRunning else { return }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    var isRunning: Bool { process?.isRunning ?? false }

    /// Open fds of the daemon.
    func openDescriptorCount() -> Int {
        guard let pid else { return -1 }
        return (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").count) ?? -1
    }

    /// Resident set size in KiB.
    func residentKiB() -> Int {
        guard let pid, let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return -1 }
        for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            return Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") ?? -1
        }
        return -1
    }

    // MARK: curl

    /// One request with curl. `body` is sent as-is with `contentType` (nil: no header).
    @discardableResult
    func request(_ method: String, _ path: String, body: String? = nil, bodyData: Data? = nil,
                 contentType: String? = "application/json", headers: [String] = [], tcp: Bool = false,
                 authorization: String? = nil, extraCurl: [String] = []) throws -> Response {
        let scratch = directory.appendingPathComponent("curl-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratch) }
        let bodyFile = scratch.appendingPathComponent("body")
        let headerFile = scratch.appendingPathComponent("headers")
        var arguments = ["-s", "-S", "-g", "--max-time", "20", "-X", method, "-o", bodyFile.path, "-D", headerFile.path,
                         "-w", "%{http_code}", "-H", "Expect:"]
        let url: String
        if tcp {
            guard let tcpPort else { throw HarnessError("no TCP listener") }
            url = "http://127.0.0.1:\(tcpPort)\(path)"
        } else {
            arguments += ["--unix-socket", apiSocket]
            url = "http://localhost\(path)"
        }
        if let authorization { arguments += ["-H", "Authorization: \(authorization)"] }
        if let contentType, body != nil || bodyData != nil { arguments += ["-H", "Content-Type: \(contentType)"] }
        if body != nil || bodyData != nil {
            let requestBody = scratch.appendingPathComponent("request")
            try (bodyData ?? Data(body!.utf8)).write(to: requestBody)
            arguments += ["--data-binary", "@\(requestBody.path)"]
        }
        for header in headers { arguments += ["-H", header] }
        arguments += extraCurl
        arguments.append(url)
        let (status, output, errors) = try Self.run(Self.curl, arguments)
        guard status == 0, let code = Int(output) else { throw HarnessError("curl \(arguments.joined(separator: " ")) failed (\(status)): \(errors)") }
        var headerMap: [String: String] = [:]
        let headerText = (try? String(contentsOf: headerFile, encoding: .utf8)) ?? ""
        for line in headerText.split(whereSeparator: { $0 == "\r\n" || $0 == "\n" }) {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headerMap[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        let responseBody = (try? String(contentsOf: bodyFile, encoding: .utf8)) ?? ""
        return Response(status: code, headers: headerMap, body: responseBody)
    }

    func json(_ method: String, _ path: String, _ object: Any) throws -> Response {
        let data = try JSONSerialization.data(withJSONObject: object)
        return try request(method, path, bodyData: data)
    }

    static func run(_ executable: String, _ arguments: [String], stdin: Data? = nil) throws -> (Int32, String, String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        let input = Pipe()
        if stdin != nil { process.standardInput = input }
        try process.run()
        if let stdin {
            input.fileHandleForWriting.write(stdin)
            try? input.fileHandleForWriting.close()
        }
        let output = out.fileHandleForReading.readDataToEndOfFile()
        let errors = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: output, as: UTF8.self), String(decoding: errors, as: UTF8.self))
    }

    /// An event stream read by `curl -N` in the background.
    final class EventReader: @unchecked Sendable {
        let process = Process()
        private let lock = NSLock()
        private var buffer = Data()

        init(harness: DaemonHarness, path: String, headers: [String] = []) throws {
            process.executableURL = URL(fileURLWithPath: DaemonHarness.curl)
            var arguments = ["-s", "-N", "--unix-socket", harness.apiSocket]
            for header in headers { arguments += ["-H", header] }
            process.arguments = arguments + ["http://localhost\(path)"]
            let pipe = Pipe()
            process.standardOutput = pipe
            pipe.fileHandleForReading.readabilityHandler = { [weak self] handle in
                let data = handle.availableData
                guard let self, !data.isEmpty else { return }
                self.lock.lock()
                self.buffer.append(data)
                self.lock.unlock()
            }
            try process.run()
        }

        var text: String {
            lock.lock()
            defer { lock.unlock() }
            return String(decoding: buffer, as: UTF8.self)
        }

        /// Waits until the stream contains `needle`.
        @discardableResult
        func waitFor(_ needle: String, timeout: TimeInterval = 5) -> Bool {
            let deadline = Date().addingTimeInterval(timeout)
            while Date() < deadline {
                if text.contains(needle) { return true }
                Thread.sleep(forTimeInterval: 0.02)
            }
            return false
        }

        /// The ids of the events received so far, in order.
        var ids: [Int] {
            text.split(separator: "\n").compactMap { line in line.hasPrefix("id: ") ? Int(line.dropFirst(4)) : nil }
        }

        func stop() {
            if process.isRunning { process.terminate() }
            process.waitUntilExit()
        }

        deinit { stop() }
    }
}

struct HarnessError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
