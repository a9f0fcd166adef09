import Foundation
import Glibc
import TestSupport
import VhostSystem
import XCTest

/// The management plane's hardening on a live daemon (issue 19 item 1): the metrics
/// listener, the Host header, event-stream limits and write time-out, token files and
/// SIGHUP, durable state writes, pending restores and readiness. The TCP token rules are in
/// ManagementDaemonLifecycleTests.
final class ManagementHardeningDaemonTests: XCTestCase {
    static let token = "s3cret-token-0123456789"

    private func freePort() -> Int { UnusedTCPPort.pick() }

    func testMetricsListenerServesOnlyMetricsHealthAndReadinessWithoutToken() throws {
        let daemon = try SwitchDaemonProcess.forAPITests()
        let metricsPort = freePort()
        try daemon.start(extraArguments: ["--pmd-threads", "1", "--metrics-listen", "127.0.0.1:\(metricsPort)"], listenTCP: true, token: Self.token)
        try daemon.waitUntilHealthy()
        let metrics = SwitchAPIClient(tcpPort: metricsPort)
        let scrape = try metrics.request("GET", "/metrics", headers: ["Accept: text/plain"])
        XCTAssertEqual(scrape.status, 200, scrape.body)
        XCTAssertTrue(scrape.body.contains("# TYPE"), scrape.body)
        XCTAssertEqual(try metrics.request("GET", "/v1/health").status, 200)
        let ready = try metrics.request("GET", "/v1/ready")
        XCTAssertEqual(ready.status, 200, ready.body)
        XCTAssertEqual(ready.object["status"] as? String, "ready")
        // Nothing else, and nothing that changes anything, with or without a token.
        XCTAssertEqual(try metrics.request("GET", "/v1/ports").status, 404)
        XCTAssertEqual(try metrics.request("GET", "/v1/ports", authorization: "Bearer \(Self.token)").status, 404)
        XCTAssertEqual(try metrics.request("GET", "/v1/events").status, 404)
        XCTAssertEqual(try metrics.request("DELETE", "/v1/fdb").status, 404)
        let create = try metrics.request("POST", "/v1/ports", body: #"{"name":"m","type":"vhost-user","socket":{"path":"m.sock"}}"#)
        XCTAssertEqual(create.status, 404, create.body)
        XCTAssertEqual(try metrics.request("DELETE", "/v1/health").status, 405)
        XCTAssertEqual(try daemon.api.request("GET", "/v1/ports/m").status, 404, "nothing was created")
        // The write-capable TCP listener still wants its token, for /metrics too.
        XCTAssertEqual(try daemon.tcpAPI().request("GET", "/metrics", headers: ["Accept: text/plain"]).status, 401)
        daemon.stop()
    }

    func testHostHeaderMustNameTheTCPListener() throws {
        let daemon = try SwitchDaemonProcess.forAPITests()
        try daemon.start(extraArguments: ["--pmd-threads", "1", "--api-host", "switch.example"], listenTCP: true, token: Self.token)
        try daemon.waitUntilHealthy()
        let tcp = try daemon.tcpAPI()
        let port = try XCTUnwrap(daemon.tcpPort)
        let bearer = "Bearer \(Self.token)"
        for host in ["127.0.0.1:\(port)", "localhost:\(port)", "switch.example:\(port)", "[::1]:\(port)"] {
            XCTAssertEqual(try tcp.request("GET", "/v1/ports", headers: ["Host: \(host)"], authorization: bearer).status, 200, host)
        }
        // DNS rebinding: the attacker's name in Host, even with a valid token (a browser may hold none).
        for host in ["evil.example:\(port)", "evil.example", "127.0.0.1:1\(port)", "localhost.evil.example:\(port)"] {
            let refused = try tcp.request("DELETE", "/v1/fdb", headers: ["Host: \(host)"], authorization: bearer)
            XCTAssertEqual(refused.status, 421, "\(host): \(refused)")
            XCTAssertEqual(refused.errorCode, "invalid_host", host)
        }
        let anonymous = try tcp.request("GET", "/v1/ports", headers: ["Host: evil.example"])
        XCTAssertEqual(anonymous.status, 421, "the Host check comes first")
        // The unix socket has no Host to check.
        XCTAssertEqual(try daemon.api.request("GET", "/v1/ports", headers: ["Host: evil.example"]).status, 200)
        daemon.stop()
    }

    func testEventStreamsAreLimitedPerClientAndInAll() throws {
        let daemon = try SwitchDaemonProcess.forAPITests()
        try daemon.start(extraArguments: ["--pmd-threads", "1", "--max-event-streams", "3", "--max-event-streams-per-client", "2"], listenTCP: true)
        try daemon.waitUntilHealthy()
        let streams = try (0..<2).map { _ in try daemon.api.eventStream() }
        defer { streams.forEach { $0.stop() } }
        for stream in streams { XCTAssertTrue(stream.waitFor("next id"), stream.text) }
        let perClient = try daemon.api.request("GET", "/v1/events", headers: ["Accept: text/event-stream"])
        XCTAssertEqual(perClient.status, 429, perClient.body)
        XCTAssertEqual(perClient.errorCode, "too_many_event_streams")
        XCTAssertNotNil(perClient.headers["retry-after"])
        // Another client (TCP is not uid 0 on the unix socket) gets the last one.
        let tcpStream = try daemon.tcpAPI().eventStream()
        defer { tcpStream.stop() }
        XCTAssertTrue(tcpStream.waitFor("next id"), tcpStream.text)
        let total = try daemon.tcpAPI().request("GET", "/v1/events", headers: ["Accept: text/event-stream"])
        XCTAssertEqual(total.status, 503, total.body)
        XCTAssertEqual(total.errorCode, "too_many_event_streams")
        // A client that went away frees its slot: the refusal itself probes the open streams
        // (otherwise the next keep-alive, up to 15 s later, would).
        streams[0].stop()
        XCTAssertTrue(waitUntil(timeout: 4) {
            // A stream that opens never ends: curl gives up after 1 s (exit 28).
            do {
                return try daemon.api.request("GET", "/v1/events", headers: ["Accept: text/event-stream"], timeout: 1).status == 200
            } catch { return "\(error)".contains("failed (28)") }
        }, "the slot of a closed stream is still taken")
        // Everything else still answers.
        XCTAssertEqual(try daemon.api.request("GET", "/v1/events").status, 200, "the JSON history is no stream")
        XCTAssertEqual(try daemon.api.request("GET", "/v1/health").status, 200)
        daemon.stop()
    }

    /// A reader that stops reading is dropped once the daemon's writes to it stay blocked
    /// for --event-stream-write-timeout seconds (without it: libmicrohttpd's 30 s).
    func testEventStreamWhoseReaderStopsReadingIsDropped() throws {
        let daemon = try SwitchDaemonProcess.forAPITests()
        try daemon.start(extraArguments: ["--pmd-threads", "1", "--event-stream-write-timeout", "2"])
        try daemon.waitUntilHealthy()
        let socket = try UnixSocket.connect(path: daemon.apiSocketPath)
        let request = Array("GET /v1/events HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\n\r\n".utf8)
        XCTAssertEqual(try request.withUnsafeBytes { try socket.write($0) }, request.count)
        XCTAssertTrue(waitUntil(timeout: 5) { self.subscribers(daemon) == 1 })
        // Never read: enough events to fill the socket's send buffer (each event is its own
        // write of some 250 bytes, charged about 1 KiB), well under the 1 MiB at which a
        // stream is cut for falling behind, which would end it without the time-out.
        let sendBuffer = (try? String(contentsOfFile: "/proc/sys/net/core/wmem_default", encoding: .utf8))
            .flatMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) } ?? 212_992
        try churnPorts(daemon, count: min(sendBuffer / 1024 + 200, 1500))
        let blockedAt = Date()
        XCTAssertTrue(waitUntil(timeout: 8) { self.subscribers(daemon) == 0 }, "the blocked stream is still open")
        XCTAssertLessThan(Date().timeIntervalSince(blockedAt), 8)
        socket.close()
        daemon.stop()
    }

    func testTokenFileReadableByOthersIsRefused() throws {
        let daemon = try SwitchDaemonProcess.forAPITests()
        let file = try daemon.writeTokenFile(Self.token, permissions: 0o644)
        let (status, output) = try daemon.runToExit(["--run-dir", daemon.runDirectory, "--state-dir", daemon.stateDirectory,
                                                     "--socket-dir", daemon.socketDirectory, "--listen", "127.0.0.1:0", "--api-token-file", file])
        XCTAssertNotEqual(status, 0)
        XCTAssertTrue(output.contains("0644") && output.contains("0600"), output)
    }

    func testSIGHUPReloadsTheTokenAndKeepsRunning() throws {
        let daemon = try SwitchDaemonProcess.forAPITests()
        try daemon.startForAPITests(listenTCP: true, token: Self.token)
        let rotated = "rotated-token-9876543210"
        try daemon.writeTokenFile(rotated)
        kill(daemon.pid, SIGHUP)
        try daemon.waitForLog("API token reloaded")
        XCTAssertTrue(daemon.isRunning, "SIGHUP does not stop the daemon")
        let tcp = try daemon.tcpAPI()
        XCTAssertEqual(try tcp.request("GET", "/v1/ports", authorization: "Bearer \(Self.token)").status, 401)
        XCTAssertEqual(try tcp.request("GET", "/v1/ports", authorization: "Bearer \(rotated)").status, 200)
        // A file that may not be used keeps the token in use.
        try daemon.writeTokenFile("third-token-0123456789", permissions: 0o644)
        kill(daemon.pid, SIGHUP)
        try daemon.waitForLog("keeping the current API token")
        XCTAssertTrue(daemon.isRunning)
        XCTAssertEqual(try tcp.request("GET", "/v1/ports", authorization: "Bearer \(rotated)").status, 200)
        XCTAssertEqual(daemon.stop(), 0)
    }

    func testStateDirectoryIsSyncedAfterTheRename() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/strace") else { throw XCTSkip("strace is not installed") }
        let daemon = try SwitchDaemonProcess.forAPITests()
        try daemon.startForAPITests()
        let log = daemon.baseDirectory + "/strace.log"
        let strace = Process()
        strace.executableURL = URL(fileURLWithPath: "/usr/bin/strace")
        strace.arguments = ["-f", "-p", "\(daemon.pid)", "-e", "trace=openat,rename,fsync", "-o", log]
        strace.standardError = FileHandle.nullDevice
        try strace.run()
        defer { if strace.isRunning { strace.interrupt(); strace.waitUntilExit() } }
        // strace attaches before the first change we want to see.
        Thread.sleep(forTimeInterval: 1)
        XCTAssertEqual(try daemon.api.request("POST", "/v1/ports", body: #"{"name":"d","type":"vhost-user","socket":{"path":"d.sock"}}"#).status, 201)
        Thread.sleep(forTimeInterval: 0.5)
        strace.interrupt()
        strace.waitUntilExit()
        let lines = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n").map(String.init)
        let rename = try XCTUnwrap(lines.firstIndex { $0.contains("rename(") && $0.contains("ports.json") }, lines.joined(separator: "\n"))
        let directory = try XCTUnwrap(lines[rename...].first { $0.contains("openat(") && $0.contains("\(daemon.stateDirectory)\"") && $0.contains("O_DIRECTORY") },
                                      lines[rename...].joined(separator: "\n"))
        let fd = try XCTUnwrap(directory.split(separator: "=").last.map { $0.trimmingCharacters(in: .whitespaces) })
        XCTAssertTrue(lines[rename...].contains { $0.contains("fsync(\(fd))") && $0.hasSuffix("= 0") }, lines[rename...].joined(separator: "\n"))
        daemon.stop()
    }

    func testPortThatFailsToRestoreStaysPendingIsRetriedAndNeverDropped() throws {
        let daemon = try SwitchDaemonProcess.forAPITests()
        // "blocked" is a file where the sockets' directory should be: both ports fail at start.
        let blocker = daemon.socketDirectory + "/blocked"
        try FileManager.default.createDirectory(atPath: daemon.socketDirectory, withIntermediateDirectories: true)
        XCTAssertTrue(FileManager.default.createFile(atPath: blocker, contents: Data("x".utf8)))
        try FileManager.default.createDirectory(atPath: daemon.stateDirectory, withIntermediateDirectories: true)
        try #"{"version":1,"ports":[{"name":"p","type":"vhost-user","socket":{"path":"blocked/p.sock"}},{"name":"q","type":"vhost-user","socket":{"path":"blocked/q.sock"}},{"name":"ok","type":"vhost-user","socket":{"path":"ok.sock"}}]}"#
            .write(toFile: daemon.stateDirectory + "/ports.json", atomically: true, encoding: .utf8)
        try daemon.startForAPITests()

        let ports = try daemon.api.request("GET", "/v1/ports").object["ports"] as? [[String: Any]] ?? []
        XCTAssertEqual(ports.compactMap { $0["name"] as? String }, ["ok", "p", "q"], daemon.output)
        let pending = try XCTUnwrap(ports.first { $0["name"] as? String == "p" })
        XCTAssertEqual(pending["state"] as? String, "pending")
        XCTAssertTrue(pending["id"] is NSNull)
        let restore = try XCTUnwrap(pending["restore"] as? [String: Any])
        XCTAssertFalse((restore["last_error"] as? String ?? "").isEmpty, "\(restore)")
        XCTAssertEqual(try daemon.api.request("GET", "/v1/ports/p").object["state"] as? String, "pending")
        XCTAssertEqual(try daemon.api.request("POST", "/v1/ports", body: #"{"name":"p","type":"vhost-user","socket":{"path":"p2.sock"}}"#).status, 409)

        // Other changes save the state: the pending ports stay in it. Deleting one drops it.
        XCTAssertEqual(try daemon.api.request("POST", "/v1/ports", body: #"{"name":"new","type":"vhost-user","socket":{"path":"new.sock"}}"#).status, 201)
        XCTAssertEqual(try savedPortNames(daemon), ["ok", "new", "p", "q"], "pending ports stay saved")
        XCTAssertEqual(try daemon.api.request("DELETE", "/v1/ports/q").status, 204)
        XCTAssertEqual(try savedPortNames(daemon), ["ok", "new", "p"])
        XCTAssertEqual(try daemon.api.request("GET", "/v1/ports/q").status, 404)

        // The cause goes away: the retry creates the port.
        try FileManager.default.removeItem(atPath: blocker)
        XCTAssertTrue(waitUntil(timeout: 10) { (try? daemon.api.request("GET", "/v1/ports/p").object["state"] as? String) == "listening" },
                      daemon.output)
        XCTAssertTrue(FileManager.default.fileExists(atPath: daemon.socketPath("blocked/p.sock")))
        XCTAssertEqual(try savedPortNames(daemon), ["ok", "new", "p"])
        daemon.stop()
    }

    func testReadinessFailsWhenTheControlLoopOrAPollThreadStallsButNotWhenThreadsSleep() throws {
        let daemon = try SwitchDaemonProcess.forAPITests()
        let metricsPort = freePort()
        try daemon.start(extraArguments: ["--pmd-threads", "1", "--readiness-stall-seconds", "2", "--metrics-listen", "127.0.0.1:\(metricsPort)"])
        try daemon.waitUntilHealthy()
        let metrics = SwitchAPIClient(tcpPort: metricsPort)
        // Idle: the adaptive poll thread sleeps and the control loop waits in epoll; both
        // still make progress (time-outs), so they are ready well past the threshold.
        for _ in 0..<4 {
            let ready = try metrics.request("GET", "/v1/ready")
            XCTAssertEqual(ready.status, 200, ready.body)
            Thread.sleep(forTimeInterval: 1)
        }
        let checks = (try metrics.request("GET", "/v1/ready").object["checks"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String }
        XCTAssertEqual(checks, ["control-loop", "pmd0"])

        // Stop one thread at a time (ptrace stops that thread only; the API keeps serving).
        for thread in ["vhost-control", "pmd0"] {
            let tid = try XCTUnwrap(threadID(of: daemon.pid, named: thread), thread)
            let stopper = try stopThread(tid, seconds: 6)
            defer { if stopper.isRunning { stopper.terminate(); stopper.waitUntilExit() } }
            var stalled: SwitchAPIClient.Reply?
            XCTAssertTrue(waitUntil(timeout: 5) {
                stalled = try? metrics.request("GET", "/v1/ready")
                return stalled?.status == 503
            }, "\(thread): \(String(describing: stalled))")
            XCTAssertEqual(stalled?.object["status"] as? String, "not_ready")
            let stalledNames = (stalled?.object["checks"] as? [[String: Any]] ?? []).filter { $0["stalled"] as? Bool == true }.compactMap { $0["name"] as? String }
            XCTAssertEqual(stalledNames, [thread == "pmd0" ? "pmd0" : "control-loop"], "\(String(describing: stalled))")
            XCTAssertEqual(try metrics.request("GET", "/v1/health").status, 200, "liveness is not readiness")
            stopper.terminate()
            stopper.waitUntilExit()
            XCTAssertTrue(waitUntil(timeout: 5) { (try? metrics.request("GET", "/v1/ready"))?.status == 200 }, "ready again once \(thread) moves")
        }
        daemon.stop()
    }

    // MARK: Helpers

    private func waitUntil(timeout: TimeInterval, _ condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if condition() { return true }
            Thread.sleep(forTimeInterval: 0.1)
        }
        return condition()
    }

    private func subscribers(_ daemon: SwitchDaemonProcess) -> Int? {
        ((try? daemon.api.request("GET", "/v1/stats"))?.object["events"] as? [String: Any])?["subscribers"] as? Int
    }

    /// The saved ports' names (snapshot with the journal replayed), as a set: save order is
    /// not part of the contract.
    private func savedPortNames(_ daemon: SwitchDaemonProcess) throws -> Set<String> {
        Set(try SavedPortState.ports(inStateDirectory: daemon.stateDirectory).compactMap { $0["name"] as? String })
    }

    /// Creates and deletes `count` ports over one curl keep-alive connection (two events each).
    private func churnPorts(_ daemon: SwitchDaemonProcess, count: Int) throws {
        var arguments = ["-s", "-o", "/dev/null", "--unix-socket", daemon.apiSocketPath]
        for index in 0..<count {
            arguments += ["-X", "POST", "-H", "Content-Type: application/json",
                          "-d", #"{"name":"churn\#(index)","type":"vhost-user","socket":{"path":"churn\#(index).sock"}}"#,
                          "http://localhost/v1/ports", "--next", "-s", "-o", "/dev/null", "--unix-socket", daemon.apiSocketPath,
                          "-X", "DELETE", "http://localhost/v1/ports/churn\(index)"]
            if index + 1 < count { arguments += ["--next", "-s", "-o", "/dev/null", "--unix-socket", daemon.apiSocketPath] }
        }
        let curl = Process()
        curl.executableURL = URL(fileURLWithPath: SwitchAPIClient.curl)
        curl.arguments = arguments
        try curl.run()
        curl.waitUntilExit()
        XCTAssertEqual(curl.terminationStatus, 0)
    }

    private func threadID(of pid: Int32, named name: String) -> Int32? {
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? []
        return tasks.compactMap(Int32.init).first { tid in
            (try? String(contentsOfFile: "/proc/\(pid)/task/\(tid)/comm", encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) == name
        }
    }

    /// Holds thread `tid` stopped (PTRACE_SEIZE + PTRACE_INTERRUPT: that thread only) for
    /// `seconds` or until the returned process is terminated, which lets it run again.
    private func stopThread(_ tid: Int32, seconds: Int) throws -> Process {
        let script = """
            import ctypes, sys, time
            libc = ctypes.CDLL(None, use_errno=True)
            tid = int(sys.argv[1])
            if libc.ptrace(0x4206, tid, None, None) != 0 or libc.ptrace(0x4207, tid, None, None) != 0:
                sys.exit("ptrace: errno %d" % ctypes.get_errno())
            print("stopped", flush=True)
            time.sleep(float(sys.argv[2]))
            """
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", script, "\(tid)", "\(seconds)"]
        let out = Pipe()
        process.standardOutput = out
        try process.run()
        let line = String(decoding: out.fileHandleForReading.availableData, as: UTF8.self)
        guard line.contains("stopped") else {
            process.waitUntilExit()
            throw XCTSkip("cannot stop a thread with ptrace here: \(line)")
        }
        return process
    }
}
