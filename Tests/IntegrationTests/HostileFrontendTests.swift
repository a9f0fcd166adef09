// The hostile front-end (Fuzz/Sources/HostileFrontend, built as its own package) against a
// live vhost-switchd: every case of UNTRUSTED-INPUT.md "vhost-user messages", garbage in the
// rings of a ready session and the guest-containment cases of issue 16, one case per fresh
// connection, round-robin, on two hostile ports, while dpdk-testpmd forwards through two other
// ports served by the same poll thread.
//
// testHostileFrontEndWhileTestpmdForwards (issue 16, "Neighbours keep forwarding") asserts:
// every case refused / closed / served / survived as expected and the daemon alive (the tool
// checks, and fails on a death or a stall); the testpmd ports' received counts rise at least
// once a second between cases (the tool's NeighbourWatch names the cases of any window
// without progress); the testpmd ports forward between every two
// samples (taken every 0.5 s) and no two samples are more than 1 s apart, so every 2-second
// window holds a whole sample interval, and a 2-second window at 0 pps would show as a sample
// without progress; each hostile port
// was disconnected with an `error` event and counted guest faults; the daemon's fd count and
// RSS are flat (the tool compares them). It prints the worst poll-loop iteration and the
// slowest REST call.
//
// testStallsStayBoundedUnderChainAndRingAttacks (issue 16, "Bounded stalls") runs only the
// ring cases (garbage chains, the concurrent guest writer, 32768-entry rings) and asserts the
// worst poll-loop iteration (/v1/stats poll_threads[].max_burst_ns) stays below 1 ms and a
// REST call every 100 ms answers within 100 ms of wall-clock time (the time without waits for
// a CPU is printed too).
//
// CPU layout (2 cores): the daemon's poll thread has CPU 1 to itself, as a PMD core has on a
// node (isolcpus); everything else the tests start (the daemon's other threads, testpmd, the
// tool, curl) runs on CPU 0. Otherwise the worst burst time would measure the scheduler
// handing CPU 1 to the tool, not the daemon's work. On CPU 0 the load generators (testpmd,
// which busy-polls, and the tool) run at nice 19 (`LowPriorityCommand`), so the daemon's
// control and API threads and the REST probe get the CPU when they wake, as they would on a
// node where the neighbours' pollers have cores of their own.
//
// HOSTILE_ITERATIONS (default 10000) and HOSTILE_STALL_ITERATIONS (default 3000) set the
// counts; HOSTILE_FRONTEND=path uses a prebuilt tool instead of building it
// (swift build --package-path Fuzz --scratch-path .build-hostile -c release --product hostile-frontend).
import Foundation
import TestSupport
import VhostSystem
import XCTest

enum HostileFrontendTool {
    static var repositoryRoot: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    }

    /// The tool's path, building it first (incremental: seconds when up to date).
    static func build() throws -> String {
        if let path = ProcessInfo.processInfo.environment["HOSTILE_FRONTEND"] { return path }
        let root = repositoryRoot
        let result = try NetworkNamespaceFixture.run(
            ["/usr/bin/env", "swift", "build", "--package-path", root + "/Fuzz", "--scratch-path", root + "/.build-hostile",
             "-c", "release", "--product", "hostile-frontend"], check: false)
        let path = root + "/.build-hostile/release/hostile-frontend"
        guard result.status == 0, FileManager.default.isExecutableFile(atPath: path) else {
            throw ToolError(description: "building hostile-frontend failed:\n\(result.output.suffix(4000))")
        }
        return path
    }
}

final class HostileFrontendTests: XCTestCase {
    static let hostilePorts = ["h0", "h1"]

    private func skipUnlessIntegrationEnvironment(_ test: String = #function) throws {
        if let reason = IntegrationEnvironment.printedSkipReason(test) { throw XCTSkip(reason) }
        guard FileManager.default.isExecutableFile(atPath: SwitchDaemonProcess.executablePath) else {
            print("[skip] \(test): \(SwitchDaemonProcess.executablePath) is not built")
            throw XCTSkip("vhost-switchd is not built")
        }
    }

    private func environmentInt(_ name: String, _ fallback: Int) -> Int {
        Int(ProcessInfo.processInfo.environment[name] ?? "") ?? fallback
    }

    func testHostileFrontEndWhileTestpmdForwards() throws {
        try skipUnlessIntegrationEnvironment()
        let iterations = environmentInt("HOSTILE_ITERATIONS", 10_000)
        let run = try HostileRun.whileTestpmdForwards(toolArguments: ["--iterations", "\(iterations)"])
        run.printSummary("hostile")

        XCTAssertTrue(run.daemonSurvived, "the daemon died under the hostile front-end:\n\(run.daemonLog.suffix(4000))")
        XCTAssertEqual(run.toolStatus, 0, "hostile-frontend reported problems:\n\(run.toolOutput)")
        XCTAssertTrue(run.toolOutput.contains("RESULT iterations=\(iterations) "), "not every iteration ran:\n\(run.toolOutput)")
        run.assertNeighboursWatchedCaseByCase()
        run.forwarding.assertNoWindowWithoutForwarding()
        for port in Self.hostilePorts {
            let stats = run.portStats[port] ?? [:]
            XCTAssertEqual(stats["state"] as? String, "listening", "\(port) still has a session: \(stats)")
            XCTAssertGreaterThan(HostileRun.integer(stats["sessions_closed_on_error"]) ?? 0, 0, "\(port) never had a session closed: \(stats)")
            XCTAssertGreaterThan(HostileRun.integer(stats["guest_faults"]) ?? 0, 0, "\(port) counted no guest memory faults: \(stats)")
            XCTAssertTrue(run.errorEvents.contains { $0.port == port && $0.message?.hasPrefix("session closed") == true },
                          "no error event closed a session of \(port); error events: \(run.errorEvents.prefix(20))")
        }
        XCTAssertEqual(run.testpmdExitStatus, 0)
        XCTAssertEqual(run.daemonExitStatus, 0, String(run.daemonLog.suffix(4000)))
    }

    func testStallsStayBoundedUnderChainAndRingAttacks() throws {
        try skipUnlessIntegrationEnvironment()
        let iterations = environmentInt("HOSTILE_STALL_ITERATIONS", 3000)
        let run = try HostileRun.whileTestpmdForwards(toolArguments: ["--iterations", "\(iterations)", "--case", "^ring-"])
        run.printSummary("stalls")
        print("[stalls] worst burst \(run.worstBurstText), slowest REST call " + String(format: "%.1f", run.rest.slowestMilliseconds) + " ms, "
              + String(format: "%.1f", run.rest.slowestServiceMilliseconds) + " ms without waits for a CPU")

        XCTAssertTrue(run.daemonSurvived, "the daemon died under the ring attacks:\n\(run.daemonLog.suffix(4000))")
        XCTAssertEqual(run.toolStatus, 0, "hostile-frontend reported problems:\n\(run.toolOutput)")
        XCTAssertTrue(run.toolOutput.contains("RESULT iterations=\(iterations) "), "not every iteration ran:\n\(run.toolOutput)")
        run.assertNeighboursWatchedCaseByCase()
        if let worst = run.worstBurstNanoseconds {
            XCTAssertLessThan(worst, 1_000_000, "a poll-loop iteration took \(worst / 1000) us (\(HostileRun.microseconds(run.worstBurstBeforeNanoseconds)) "
                              + "before the tool ran; the poll thread was preempted \(run.pollThreadPreemptions.map(String.init) ?? "?") times meanwhile)")
        } else {
            XCTFail("/v1/stats has no poll_threads[].max_burst_ns")
        }
        XCTAssertEqual(run.rest.failures, 0, "REST calls failed: \(run.rest)")
        // Issue 16's bound, as the client sees it: the load generators run at nice 19, so CPU 0
        // is the daemon's and the probe's when they need it.
        XCTAssertLessThan(run.rest.slowestMilliseconds, 100, "a REST call took \(run.rest)")
        run.forwarding.assertNoWindowWithoutForwarding()
        XCTAssertEqual(run.testpmdExitStatus, 0)
        XCTAssertEqual(run.daemonExitStatus, 0, String(run.daemonLog.suffix(4000)))
    }
}

/// testpmd's port counters, sampled every `HostileRun.sampleInterval` while the tool runs.
struct ForwardingSamples {
    private(set) var count = 0
    /// Samples in which some port's rx or tx counter did not rise.
    private(set) var stalls: [String] = []
    private(set) var longestGapSeconds = 0.0
    private var last: [TestpmdPortStats]
    private var lastTime: Date

    init(_ first: [TestpmdPortStats]) {
        last = first
        lastTime = Date()
    }

    mutating func record(_ now: [TestpmdPortStats]) {
        count += 1
        let time = Date()
        longestGapSeconds = max(longestGapSeconds, time.timeIntervalSince(lastTime))
        for port in 0..<min(now.count, last.count) where now[port].rxPackets <= last[port].rxPackets || now[port].txPackets <= last[port].txPackets {
            stalls.append("sample \(count) port \(port): \(last[port]) -> \(now[port])")
        }
        last = now
        lastTime = time
    }

    /// Every sample rose and samples were at most 1 s apart. Any 2-second window then holds a
    /// whole sample interval, in which both ports forwarded: a 2-second stall cannot fit
    /// between two samples (with 2 s apart it could, a 2.5 s stall straddling three samples
    /// that each saw some progress at their edges).
    func assertNoWindowWithoutForwarding(file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertGreaterThan(count, 0, "testpmd was never sampled while the tool ran", file: file, line: line)
        XCTAssertTrue(stalls.isEmpty, "testpmd ports stopped forwarding:\n\(stalls.joined(separator: "\n"))", file: file, line: line)
        XCTAssertLessThanOrEqual(longestGapSeconds, 1, "samples \(longestGapSeconds) s apart: a 2 s window may hold no whole interval",
                                 file: file, line: line)
    }
}

/// One run of the tool against a daemon whose other two ports testpmd forwards through, with
/// everything the assertions look at afterwards.
struct HostileRun {
    var toolOutput = ""
    var toolStatus: Int32 = -1
    var forwarding: ForwardingSamples
    var rest = RESTLatencyProbe.Summary()
    /// The longest poll-loop iteration before the tool started, and at the end (ns); nil when
    /// /v1/stats does not have poll_threads[].max_burst_ns.
    var worstBurstBeforeNanoseconds: UInt64?
    var worstBurstNanoseconds: UInt64?
    /// /v1/stats "ports" by name, read after the tool ended.
    var portStats: [String: [String: Any]] = [:]
    var errorEvents: [SwitchEventRecorder.Event] = []
    /// How often the daemon's poll threads were preempted while the tool ran: a poll-loop
    /// iteration's time is wall-clock, so a preemption counts in it.
    var pollThreadPreemptions: Int?
    var daemonSurvived = false
    var daemonLog = ""
    var testpmdExitStatus: Int32 = -1
    var daemonExitStatus: Int32 = -1

    static let config = """
    {"ports": [
      {"name": "a", "type": "vhost-user", "socket": {"path": "a.sock"}},
      {"name": "b", "type": "vhost-user", "socket": {"path": "b.sock"}},
      {"name": "h0", "type": "vhost-user", "socket": {"path": "h0.sock"}},
      {"name": "h1", "type": "vhost-user", "socket": {"path": "h1.sock"}}
    ]}
    """

    /// How often testpmd's counters are sampled while the tool runs.
    static let sampleInterval: TimeInterval = 0.5

    /// Starts the daemon (one poll thread, CPU 1) and testpmd forwarding through a and b,
    /// runs the tool on h0 and h1 with `toolArguments`, samples testpmd every 0.5 s and a REST
    /// call every 100 ms, records the error events, then stops everything. testpmd and the
    /// tool run at nice 19.
    static func whileTestpmdForwards(toolArguments: [String]) throws -> HostileRun {
        let tool = try HostileFrontendTool.build()
        return try onCPU0 {
            let daemon = try SwitchDaemonProcess(config: config, extraArguments: ["--pmd-cpus", "1", "--log-level", "warning"])
            defer { daemon.stop() }
            for name in ["a", "b"] + HostileFrontendTests.hostilePorts { try daemon.waitForFile(daemon.socketPath(name + ".sock")) }
            let api = SwitchAPIClient(daemon)
            try daemon.waitUntilHealthy()

            // io forwarding: what arrives on one port leaves on the other, so the tx_first
            // packets circulate through the switch for as long as it forwards.
            let frontEnd = try Testpmd.frontEnd(sockets: [daemon.socketPath("a.sock"), daemon.socketPath("b.sock")],
                                                cpu: 0, forwardMode: "io", burst: 32, niceness: LowPriorityCommand.lowestNiceness)
            defer { frontEnd.quit() }
            try frontEnd.waitForLinkUp(ports: [0, 1])
            try frontEnd.start(txFirst: 4)
            var run = HostileRun(forwarding: ForwardingSamples(
                try frontEnd.waitForPortStats(timeout: 10) { $0.count == 2 && $0.allSatisfy { $0.rxPackets > 1000 } }))
            run.worstBurstBeforeNanoseconds = try worstBurst(api)

            let events = try SwitchEventRecorder(daemon, query: "type=error")
            let preemptionsBefore = pollThreadPreemptions(daemon)
            let probe = RESTLatencyProbe(daemon)
            try probe.start(cpus: [0])
            let output = try runTool(tool, arguments: ["--socket", daemon.socketPath("h0.sock"), "--socket", daemon.socketPath("h1.sock"),
                                                       "--pid", "\(daemon.pid)", "--api", daemon.apiSocketPath,
                                                       "--neighbour", "a", "--neighbour", "b"] + toolArguments) {
                run.forwarding.record(try frontEnd.portStats())
            }
            run.rest = probe.stop()
            run.pollThreadPreemptions = pollThreadPreemptions(daemon).flatMap { after in preemptionsBefore.map { after - $0 } }
            run.toolOutput = output.text
            run.toolStatus = output.status
            run.daemonSurvived = daemon.isRunning
            guard run.daemonSurvived else {
                run.daemonLog = daemon.output
                return run
            }
            run.worstBurstNanoseconds = try worstBurst(api)
            run.portStats = try portStatsByName(api)
            Thread.sleep(forTimeInterval: 0.1)  // the last events on their way through curl
            events.stop()
            run.errorEvents = events.events
            _ = try frontEnd.stop()
            run.testpmdExitStatus = frontEnd.quit()
            run.daemonExitStatus = daemon.stop()
            run.daemonLog = daemon.output
            return run
        }
    }

    /// Runs the tool at nice 19 to the end, calling `sample` every `sampleInterval` meanwhile.
    private static func runTool(_ path: String, arguments: [String], sample: () throws -> Void) throws -> (text: String, status: Int32) {
        let process = Process()
        let command = LowPriorityCommand.wrap([path] + arguments)
        process.executableURL = URL(fileURLWithPath: command[0])
        process.arguments = Array(command.dropFirst())
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        let collected = ToolOutput()
        pipe.fileHandleForReading.readabilityHandler = { handle in
            let chunk = handle.availableData
            if chunk.isEmpty { handle.readabilityHandler = nil } else { collected.append(chunk) }
        }
        let started = Date()
        try process.run()
        while process.isRunning {
            Thread.sleep(forTimeInterval: sampleInterval)
            guard process.isRunning else { break }
            try sample()
            if Date().timeIntervalSince(started) > 900 { process.terminate() }
        }
        process.waitUntilExit()
        Thread.sleep(forTimeInterval: 0.1)  // the pipe's last bytes
        return (collected.text, process.terminationStatus)
    }

    /// The largest poll_threads[].max_burst_ns of GET /v1/stats; nil when the field is missing.
    static func worstBurst(_ api: SwitchAPIClient) throws -> UInt64? {
        let threads = try api.expect("GET", "/v1/stats", status: [200]).object["poll_threads"] as? [[String: Any]] ?? []
        let values = threads.compactMap { integer($0["max_burst_ns"]) }
        return values.isEmpty ? nil : UInt64(values.max()!)
    }

    /// A JSON number from JSONSerialization (NSNumber or Int, depending on the Foundation).
    static func integer(_ value: Any?) -> Int? { value as? Int ?? (value as? NSNumber)?.intValue }

    static func portStatsByName(_ api: SwitchAPIClient) throws -> [String: [String: Any]] {
        let ports = try api.expect("GET", "/v1/stats", status: [200]).object["ports"] as? [[String: Any]] ?? []
        return Dictionary(ports.compactMap { port in (port["name"] as? String).map { ($0, port) } }) { first, _ in first }
    }

    /// Involuntary context switches of the daemon's poll threads (pmdN) so far.
    static func pollThreadPreemptions(_ daemon: SwitchDaemonProcess) -> Int? {
        let tasks = "/proc/\(daemon.pid)/task"
        guard let threads = try? FileManager.default.contentsOfDirectory(atPath: tasks) else { return nil }
        var total = 0
        for thread in threads {
            guard let name = try? String(contentsOfFile: "\(tasks)/\(thread)/comm", encoding: .utf8), name.hasPrefix("pmd"),
                  let status = try? String(contentsOfFile: "\(tasks)/\(thread)/status", encoding: .utf8),
                  let line = status.split(separator: "\n").first(where: { $0.hasPrefix("nonvoluntary_ctxt_switches:") }),
                  let count = Int(line.split(separator: "\t").last ?? "") else { continue }
            total += count
        }
        return total
    }

    /// Pins the calling thread to CPU 0 while `body` runs: the processes and threads it starts
    /// inherit CPU 0; the daemon moves its poll thread to CPU 1 itself (--pmd-cpus 1).
    static func onCPU0<T>(_ body: () throws -> T) throws -> T {
        try SystemThread.pinCurrent(to: [0])
        defer { try? SystemThread.pinCurrent(to: Array(0..<ProcessInfo.processInfo.activeProcessorCount)) }
        return try body()
    }

    var worstBurstText: String { Self.microseconds(worstBurstNanoseconds) }

    static func microseconds(_ nanoseconds: UInt64?) -> String {
        nanoseconds.map { "\($0 / 1000) us" } ?? "unknown (no max_burst_ns in /v1/stats)"
    }

    /// The tool watched testpmd's ports between cases (NeighbourWatch: at least one check a
    /// second of a run that lasts tens of seconds) and found no window without progress.
    func assertNeighboursWatchedCaseByCase(file: StaticString = #filePath, line: UInt = #line) {
        let summary = toolOutput.split(separator: "\n").first { $0.hasPrefix("neighbours a, b: ") }
        let checks = summary.flatMap { Int($0.dropFirst("neighbours a, b: ".count).prefix { $0.isNumber }) } ?? 0
        XCTAssertGreaterThanOrEqual(checks, 10, "the tool did not watch the neighbours:\n\(toolOutput.suffix(3000))", file: file, line: line)
        XCTAssertFalse(toolOutput.contains("NEIGHBOUR STALL"), "a case stalled the neighbours:\n\(toolOutput.suffix(3000))", file: file, line: line)
    }

    func printSummary(_ tag: String) {
        let lines = toolOutput.split(separator: "\n").filter { !$0.hasPrefix("  ") || $0.contains("iterations") }
        print("[\(tag)] " + lines.joined(separator: "\n[\(tag)] "))
        print("[\(tag)] testpmd forwarding sampled \(forwarding.count) times, \(forwarding.stalls.count) stalls, samples at most "
              + String(format: "%.2f", forwarding.longestGapSeconds) + " s apart")
        print("[\(tag)] worst burst \(worstBurstText) (before the tool: \(Self.microseconds(worstBurstBeforeNanoseconds)); the poll "
              + "thread was preempted \(pollThreadPreemptions.map(String.init) ?? "?") times meanwhile), REST: \(rest)")
        for port in HostileFrontendTests.hostilePorts {
            let stats = portStats[port] ?? [:]
            let closing = errorEvents.filter { $0.port == port && $0.message?.hasPrefix("session closed") == true }
            print("[\(tag)] \(port): state \(stats["state"] ?? "?"), sessions \(stats["sessions"] ?? "?"), closed on error "
                  + "\(stats["sessions_closed_on_error"] ?? "?"), guest faults \(stats["guest_faults"] ?? "?"), error events "
                  + "\(errorEvents.filter { $0.port == port }.count) (\(closing.count) closing a session)")
        }
        print("[\(tag)] most frequent error events:\n" + Self.mostFrequent(errorEvents.compactMap(\.message), limit: 12)
            .map { "[\(tag)]   \($0.count) x \($0.text)" }.joined(separator: "\n"))
    }

    /// Messages grouped without the numbers in them ("suppressed 3 similar"), most frequent first.
    static func mostFrequent(_ messages: [String], limit: Int) -> [(text: String, count: Int)] {
        var counts: [String: Int] = [:]
        for message in messages {
            let shape = String(message.prefix(120).map { $0.isNumber ? "#" : $0 })
            counts[shape, default: 0] += 1
        }
        return counts.sorted { $0.value > $1.value }.prefix(limit).map { ($0.key, $0.value) }
    }
}

struct ToolError: Error, CustomStringConvertible { var description: String }

final class ToolOutput: @unchecked Sendable {
    private let lock = NSLock()
    private var data = Data()
    func append(_ chunk: Data) { lock.lock(); data.append(chunk); lock.unlock() }
    var text: String { lock.lock(); defer { lock.unlock() }; return String(decoding: data, as: UTF8.self) }
}
