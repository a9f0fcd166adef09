// The hostile front-end (Fuzz/Sources/HostileFrontend, built as its own package) against a
// live vhost-switchd: every case of UNTRUSTED-INPUT.md "vhost-user messages" plus garbage in
// the rings of a ready session, one case per fresh connection, round-robin, on two hostile
// ports, while dpdk-testpmd forwards through two other ports of the same daemon.
//
// Asserts: the daemon lives; every case is refused / survived as expected; the testpmd ports
// keep forwarding (their counters rise in every sample taken while the tool runs); the
// daemon's fd count and RSS are flat (printed before/after).
//
// HOSTILE_ITERATIONS (default 10000) sets the count; HOSTILE_FRONTEND=path uses a prebuilt
// tool instead of building it (swift build --package-path Fuzz --scratch-path .build-hostile).
import Foundation
import TestSupport
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
    private func skipUnlessIntegrationEnvironment(_ test: String = #function) throws {
        if let reason = IntegrationEnvironment.printedSkipReason(test) { throw XCTSkip(reason) }
        guard FileManager.default.isExecutableFile(atPath: SwitchDaemonProcess.executablePath) else {
            print("[skip] \(test): \(SwitchDaemonProcess.executablePath) is not built")
            throw XCTSkip("vhost-switchd is not built")
        }
    }

    func testHostileFrontEndWhileTestpmdForwards() throws {
        try skipUnlessIntegrationEnvironment()
        let iterations = Int(ProcessInfo.processInfo.environment["HOSTILE_ITERATIONS"] ?? "") ?? 10_000
        let tool = try HostileFrontendTool.build()
        let config = """
        {"ports": [
          {"name": "a", "type": "vhost-user", "socket": {"path": "a.sock"}},
          {"name": "b", "type": "vhost-user", "socket": {"path": "b.sock"}},
          {"name": "h0", "type": "vhost-user", "socket": {"path": "h0.sock"}},
          {"name": "h1", "type": "vhost-user", "socket": {"path": "h1.sock"}}
        ]}
        """
        let daemon = try SwitchDaemonProcess(config: config, extraArguments: ["--pmd-cpus", "1", "--log-level", "warning"])
        defer { daemon.stop() }
        for name in ["a", "b", "h0", "h1"] { try daemon.waitForFile(daemon.socketPath(name + ".sock")) }

        // io forwarding: what arrives on one port leaves on the other, so the tx_first packets
        // circulate through the switch for as long as it forwards.
        let frontEnd = try Testpmd.frontEnd(sockets: [daemon.socketPath("a.sock"), daemon.socketPath("b.sock")],
                                            cpu: 0, forwardMode: "io", burst: 32)
        defer { frontEnd.quit() }
        try frontEnd.waitForLinkUp(ports: [0, 1])
        try frontEnd.start(txFirst: 4)
        var last = try frontEnd.waitForPortStats(timeout: 10) { $0.count == 2 && $0.allSatisfy { $0.rxPackets > 1000 } }

        let process = Process()
        process.executableURL = URL(fileURLWithPath: tool)
        process.arguments = ["--socket", daemon.socketPath("h0.sock"), "--socket", daemon.socketPath("h1.sock"),
                             "--iterations", "\(iterations)", "--pid", "\(daemon.pid)"]
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
        var samples = 0
        var stalled: [String] = []
        while process.isRunning {
            Thread.sleep(forTimeInterval: 1)
            guard process.isRunning else { break }
            let now = try frontEnd.portStats()
            samples += 1
            for port in 0..<2 where now[port].rxPackets <= last[port].rxPackets || now[port].txPackets <= last[port].txPackets {
                stalled.append("sample \(samples) port \(port): \(last[port]) -> \(now[port])")
            }
            last = now
            XCTAssertTrue(daemon.isRunning, "the daemon died under the hostile front-end")
            if Date().timeIntervalSince(started) > 600 { process.terminate() }
        }
        process.waitUntilExit()
        Thread.sleep(forTimeInterval: 0.1)
        let output = collected.text
        print("[hostile] \(output.split(separator: "\n").filter { !$0.hasPrefix("  ") || $0.contains("iterations") }.joined(separator: "\n[hostile] "))")
        let final = try frontEnd.portStats()
        print("[hostile] testpmd forwarding sampled \(samples) times during the run, \(stalled.count) stalls; final \(final)")
        XCTAssertEqual(process.terminationStatus, 0, "hostile-frontend reported problems:\n\(output)")
        XCTAssertTrue(stalled.isEmpty, "testpmd ports stopped forwarding while the hostile front-end ran:\n\(stalled.joined(separator: "\n"))")
        XCTAssertTrue(output.contains("RESULT iterations=\(iterations) "), "not every iteration ran:\n\(output)")
        XCTAssertTrue(daemon.isRunning, daemon.output.suffix(4000).description)
        _ = try frontEnd.stop()
        XCTAssertEqual(frontEnd.quit(), 0)
        XCTAssertEqual(daemon.stop(), 0, String(daemon.output.suffix(4000)))
    }
}

struct ToolError: Error, CustomStringConvertible { var description: String }

final class ToolOutput: @unchecked Sendable {
    private let lock = NSLock()
    private var data = Data()
    func append(_ chunk: Data) { lock.lock(); data.append(chunk); lock.unlock() }
    var text: String { lock.lock(); defer { lock.unlock() }; return String(decoding: data, as: UTF8.self) }
}
