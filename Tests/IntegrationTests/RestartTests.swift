// Ports created over the REST API survive a crash of the daemon: after kill -9 and a
// restart on the same state directory they are back, a server-mode front-end can connect
// again, and a client-mode front-end (virtio-user server=1) is reconnected by the switch.
import Foundation
import TestSupport
import XCTest

final class RestartTests: XCTestCase {
    private func api(_ daemon: SwitchDaemonProcess, _ method: String, _ path: String, body: String? = nil) throws -> (status: Int, body: String) {
        let reply = try SwitchAPIClient(daemon).request(method, path, body: body)
        return (reply.status, reply.body)
    }

    /// Until /v1/health answers: a crashed daemon's stale api.sock may still be there.
    private func waitForAPI(_ daemon: SwitchDaemonProcess) throws {
        try daemon.waitForFile(daemon.apiSocketPath)
        let deadline = Date().addingTimeInterval(15)
        while Date() < deadline {
            if let answer = try? api(daemon, "GET", "/v1/health"), answer.status == 200 { return }
            Thread.sleep(forTimeInterval: 0.05)
        }
        XCTFail("the API never answered:\n\(daemon.output)")
    }

    func testPortsComeBackAfterKillAndFrontEndsReconnect() throws {
        if let reason = IntegrationEnvironment.printedSkipReason() { throw XCTSkip(reason) }
        var daemon = try SwitchDaemonProcess(extraArguments: ["--pmd-cpus", "1"])
        defer { daemon.stop() }
        try waitForAPI(daemon)
        // Server mode: the switch owns s0.sock and s1.sock.
        for name in ["s0", "s1"] {
            XCTAssertEqual(try api(daemon, "POST", "/v1/ports", body: #"{"name": "\#(name)", "type": "vhost-user", "socket": {"path": "\#(name).sock"}}"#).status, 201)
        }
        // Client mode: a front-end owns c0.sock and c1.sock (virtio-user server=1) and waits.
        let clientFrontEnd = try Testpmd.frontEnd(sockets: [daemon.socketPath("c0.sock"), daemon.socketPath("c1.sock")],
                                                  macs: ["02:00:00:00:04:00", "02:00:00:00:04:01"], serverMode: true, cpu: 0, burst: 16)
        defer { clientFrontEnd.quit() }
        for name in ["c0", "c1"] {
            try daemon.waitForFile(daemon.socketPath("\(name).sock"), timeout: 30)
            XCTAssertEqual(try api(daemon, "POST", "/v1/ports", body: #"{"name": "\#(name)", "type": "vhost-user", "socket": {"path": "\#(name).sock", "mode": "client"}}"#).status, 201)
        }
        try clientFrontEnd.waitForPrompt(timeout: 30)
        try clientFrontEnd.waitForLinkUp(ports: [0, 1])
        try clientFrontEnd.exchangeBothWays()
        let serverFrontEnd = try Testpmd.frontEnd(sockets: [daemon.socketPath("s0.sock"), daemon.socketPath("s1.sock")], cpu: 0, burst: 16)
        try serverFrontEnd.waitForLinkUp(ports: [0, 1])
        try serverFrontEnd.exchangeBothWays()
        serverFrontEnd.terminate()

        // A crash: no clean-up, stale socket files left behind.
        daemon.crash()
        daemon = try SwitchDaemonProcess(extraArguments: ["--pmd-cpus", "1"], reuseDirectoriesOf: daemon)
        try waitForAPI(daemon)
        let listing = try api(daemon, "GET", "/v1/ports")
        XCTAssertEqual(listing.status, 200)
        for name in ["s0", "s1", "c0", "c1"] {
            XCTAssertTrue(listing.body.contains("\"\(name)\""), "\(name) restored: \(listing.body)")
        }
        // The switch reconnects to the client-mode front-end by itself...
        try daemon.waitForLog("port=c1 [Dataplane] device ready", timeout: 30)
        try clientFrontEnd.exchangeBothWays()
        // ...and a server-mode front-end can connect again to the re-created sockets.
        let again = try Testpmd.frontEnd(sockets: [daemon.socketPath("s0.sock"), daemon.socketPath("s1.sock")], cpu: 0, burst: 16)
        defer { again.quit() }
        try again.waitForLinkUp(ports: [0, 1])
        try again.exchangeBothWays()
        print("[restart] 4 ports restored after kill -9; client-mode front-end reconnected, server-mode front-end connected again")
    }
}
