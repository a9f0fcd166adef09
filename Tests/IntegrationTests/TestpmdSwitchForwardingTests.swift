// vhost-switchd against a real front-end: dpdk-testpmd with two net_virtio_user ports
// connected to the daemon's two sockets. What one port sends the other must receive, with
// exact packet and byte counts, in server and client mode, and across front-end restarts.
import Foundation
import TestSupport
import XCTest

final class TestpmdSwitchForwardingTests: XCTestCase {
    private func skipUnlessIntegrationEnvironment(_ test: String = #function) throws {
        if let reason = IntegrationEnvironment.printedSkipReason(test) { throw XCTSkip(reason) }
        guard FileManager.default.isExecutableFile(atPath: SwitchDaemonProcess.executablePath) else {
            print("[skip] \(test): \(SwitchDaemonProcess.executablePath) is not built")
            throw XCTSkip("vhost-switchd is not built")
        }
    }

    private func twoPortConfig(mode: String, paths: [String] = ["a.sock", "b.sock"]) -> String {
        """
        {"ports": [
          {"name": "a", "type": "vhost-user", "socket": {"path": "\(paths[0])", "mode": "\(mode)"}, "queues": 1},
          {"name": "b", "type": "vhost-user", "socket": {"path": "\(paths[1])", "mode": "\(mode)"}, "queues": 1}
        ]}
        """
    }

    func testServerModeForwardsExactCounts() throws {
        try skipUnlessIntegrationEnvironment()
        let daemon = try SwitchDaemonProcess(config: twoPortConfig(mode: "server"), extraArguments: ["--pmd-cpus", "1"])
        defer { daemon.stop() }
        let sockets = [daemon.socketPath("a.sock"), daemon.socketPath("b.sock")]
        for socket in sockets { try daemon.waitForFile(socket) }

        let frontEnd = try Testpmd.frontEnd(sockets: sockets, cpu: 0, burst: 16)
        defer { frontEnd.quit() }
        try frontEnd.waitForLinkUp(ports: [0, 1])
        try daemon.waitForLog("device ready")
        try assertExactExchange(frontEnd, bursts: 4, burst: 16, length: 64)
        try assertExactExchange(frontEnd, bursts: 2, burst: 16, length: 1518)
        XCTAssertEqual(frontEnd.quit(), 0)
        XCTAssertEqual(daemon.stop(), 0, daemon.output)
        for socket in sockets {
            XCTAssertFalse(FileManager.default.fileExists(atPath: socket), "a clean shutdown removes \(socket)")
        }
    }

    func testClientModeForwardsExactCounts() throws {
        try skipUnlessIntegrationEnvironment()
        let socketDirectory = try TemporarySocketDirectory()
        let sockets = [socketDirectory.socket("a.sock"), socketDirectory.socket("b.sock")]
        // The front-end owns the sockets (virtio-user server=1) and waits for the switch.
        let frontEnd = try Testpmd.frontEnd(sockets: sockets, serverMode: true, cpu: 0, burst: 8)
        defer { frontEnd.quit() }
        let daemon = try SwitchDaemonProcess(config: twoPortConfig(mode: "client", paths: sockets),
                                             extraArguments: ["--pmd-cpus", "1", "--socket-dir", socketDirectory.path])
        defer { daemon.stop() }
        try frontEnd.waitForPrompt(timeout: 30)
        try frontEnd.waitForLinkUp(ports: [0, 1])
        try daemon.waitForLog("device ready")
        try assertExactExchange(frontEnd, bursts: 3, burst: 8, length: 64)
        XCTAssertEqual(frontEnd.quit(), 0)
        XCTAssertEqual(daemon.stop(), 0, daemon.output)
    }

    func testFrontEndRestartedFiveTimesComesBack() throws {
        try skipUnlessIntegrationEnvironment()
        let daemon = try SwitchDaemonProcess(config: twoPortConfig(mode: "server"), extraArguments: ["--pmd-cpus", "1"])
        defer { daemon.stop() }
        let sockets = [daemon.socketPath("a.sock"), daemon.socketPath("b.sock")]
        for socket in sockets { try daemon.waitForFile(socket) }
        for round in 1...5 {
            let frontEnd = try Testpmd.frontEnd(sockets: sockets, cpu: 0, burst: 16)
            try frontEnd.waitForLinkUp(ports: [0, 1])
            try assertExactExchange(frontEnd, bursts: 2, burst: 16, length: 64)
            // Alternate a clean quit and a crash: both must leave the ports listening again.
            if round % 2 == 0 { frontEnd.terminate() } else { XCTAssertEqual(frontEnd.quit(), 0) }
            XCTAssertTrue(daemon.isRunning, "round \(round): daemon died:\n\(daemon.output)")
        }
        XCTAssertEqual(daemon.stop(), 0, daemon.output)
    }
}
