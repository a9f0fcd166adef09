import Foundation
import TestSupport
import XCTest

/// TCP and bearer tokens, persistence across kill -9, corrupt state files.
final class ManagementDaemonLifecycleTests: XCTestCase {
    static let token = "s3cret-token-0123456789"

    func testTCPWithTokenNeedsBearer() throws {
        let daemon = try SwitchDaemonProcess.forAPITests()
        try daemon.startForAPITests(listenTCP: true, token: Self.token)
        let none = try daemon.tcpAPI().request("GET", "/v1/health")
        XCTAssertEqual(none.status, 401)
        XCTAssertEqual(none.errorCode, "unauthorized")
        XCTAssertEqual(none.headers["www-authenticate"], #"Bearer realm="vhost-switch""#)
        let wrong = try daemon.tcpAPI().request("GET", "/v1/health", authorization: "Bearer s3cret-token-0123456780")
        XCTAssertEqual(wrong.status, 401)
        XCTAssertEqual(try daemon.tcpAPI().request("GET", "/v1/health", authorization: "Bearer \(Self.token)x").status, 401)
        XCTAssertEqual(try daemon.tcpAPI().request("GET", "/v1/health", authorization: "Basic \(Self.token)").status, 401)
        XCTAssertEqual(try daemon.tcpAPI().request("GET", "/v1/health", authorization: "Bearer \(Self.token)").status, 200)
        // A refused request's body is never looked at: 401 comes before 413/415.
        let refused = try daemon.tcpAPI().request("POST", "/v1/ports", body: "not json", contentType: "text/plain")
        XCTAssertEqual(refused.status, 401)
        let created = try daemon.tcpAPI().request("POST", "/v1/ports", body: #"{"name":"t","type":"vhost-user","socket":{"path":"t.sock"}}"#,
                                                  authorization: "Bearer \(Self.token)")
        XCTAssertEqual(created.status, 201, created.body)
        // The unix socket is guarded by its file mode, not the token.
        XCTAssertEqual(try daemon.api.request("GET", "/v1/ports/t").status, 200)
        daemon.stop()
    }

    func testTCPOnLoopbackWithInsecureFlagIsOpenAndWarns() throws {
        let daemon = try SwitchDaemonProcess.forAPITests()
        try daemon.startForAPITests(listenTCP: true)
        XCTAssertTrue(daemon.arguments.contains("--insecure-tcp"), "\(daemon.arguments)")
        XCTAssertEqual(try daemon.tcpAPI().request("GET", "/v1/version").status, 200)
        XCTAssertTrue(daemon.output.contains("warning") && daemon.output.contains("--insecure-tcp"), daemon.output)
        daemon.stop()
    }

    func testTCPWithoutTokenRefusesToStart() throws {
        let daemon = try SwitchDaemonProcess.forAPITests()
        let directories = ["--run-dir", daemon.runDirectory, "--state-dir", daemon.stateDirectory, "--socket-dir", daemon.socketDirectory]
        let (status, output) = try daemon.runToExit(directories + ["--listen", "0.0.0.0:0"])
        XCTAssertNotEqual(status, 0)
        XCTAssertTrue(output.contains("token"), output)
        // Loopback too: every process on the node could manage the switch.
        let (loopback, loopbackOutput) = try daemon.runToExit(directories + ["--listen", "127.0.0.1:0"])
        XCTAssertNotEqual(loopback, 0)
        XCTAssertTrue(loopbackOutput.contains("--api-token-file") && loopbackOutput.contains("--insecure-tcp"), loopbackOutput)
        // --insecure-tcp is for loopback only.
        let (insecure, insecureOutput) = try daemon.runToExit(directories + ["--listen", "0.0.0.0:0", "--insecure-tcp"])
        XCTAssertNotEqual(insecure, 0)
        XCTAssertTrue(insecureOutput.contains("loopback"), insecureOutput)
        let (badListen, message) = try daemon.runToExit(["--run-dir", daemon.runDirectory, "--listen", "localhost:80"])
        XCTAssertNotEqual(badListen, 0)
        XCTAssertTrue(message.contains("--listen"), message)
    }

    func testPortsSurviveKill9() throws {
        let daemon = try SwitchDaemonProcess.forAPITests()
        try daemon.startForAPITests()
        XCTAssertEqual(try daemon.api.request("POST", "/v1/ports", body: #"{"name":"srv","type":"vhost-user","socket":{"path":"srv.sock","permissions":"0600"},"queues":2,"mtu":1500}"#).status, 201)
        XCTAssertEqual(try daemon.api.request("POST", "/v1/ports", body: #"{"name":"cli","type":"vhost-user","socket":{"path":"pod/cli.sock","mode":"client"}}"#).status, 201)
        XCTAssertEqual(try daemon.api.request("POST", "/v1/ports", body: #"{"name":"gone","type":"vhost-user","socket":{"path":"gone.sock"}}"#).status, 201)
        XCTAssertEqual(try daemon.api.request("DELETE", "/v1/ports/gone").status, 204)
        XCTAssertEqual(try daemon.api.request("PATCH", "/v1/ports/srv/features", body: #"{"disable":["mrg_rxbuf"]}"#).status, 200)
        let offered = (try daemon.api.request("GET", "/v1/ports/srv/features").object["offered"] as? [String: Any])?["mask"] as? String
        XCTAssertTrue(FileManager.default.fileExists(atPath: daemon.stateDirectory + "/ports.json"))

        daemon.crash()
        try daemon.startForAPITests()
        let ports = try daemon.api.request("GET", "/v1/ports").object["ports"] as? [[String: Any]] ?? []
        XCTAssertEqual(Set(ports.compactMap { $0["name"] as? String }), ["srv", "cli"], daemon.output)
        let server = try daemon.api.request("GET", "/v1/ports/srv")
        XCTAssertEqual(server.object["queues"] as? Int, 2)
        XCTAssertEqual(server.object["mtu"] as? Int, 1500)
        XCTAssertEqual(server.object["state"] as? String, "listening")
        XCTAssertEqual((server.object["socket"] as? [String: Any])?["permissions"] as? String, "0600")
        XCTAssertTrue(FileManager.default.fileExists(atPath: daemon.socketPath("srv.sock")), "listening again")
        XCTAssertEqual(try daemon.api.request("GET", "/v1/ports/cli").object["state"] as? String, "connecting", "client reconnecting")
        let restored = (try daemon.api.request("GET", "/v1/ports/srv/features").object["offered"] as? [String: Any])?["mask"] as? String
        XCTAssertEqual(restored, offered, "the offered features survive a restart")
        daemon.stop()
    }

    func testCorruptStateFileIsMovedAsideAndReported() throws {
        let daemon = try SwitchDaemonProcess.forAPITests()
        try FileManager.default.createDirectory(atPath: daemon.stateDirectory, withIntermediateDirectories: true)
        let file = URL(fileURLWithPath: daemon.stateDirectory + "/ports.json")
        try #"{"version":1,"ports":[{"name":"ok""#.write(to: file, atomically: true, encoding: .utf8)
        try daemon.startForAPITests()
        XCTAssertTrue(daemon.output.contains("corrupt"), daemon.output)
        let names = try FileManager.default.contentsOfDirectory(atPath: daemon.stateDirectory)
        XCTAssertTrue(names.contains { $0.hasPrefix("ports.json.corrupt-") }, "\(names)")
        XCTAssertEqual(try daemon.api.request("GET", "/v1/health").status, 200)
        daemon.stop()
    }

    func testStateWithOneBadEntryKeepsTheGoodOnes() throws {
        let daemon = try SwitchDaemonProcess.forAPITests()
        try FileManager.default.createDirectory(atPath: daemon.stateDirectory, withIntermediateDirectories: true)
        let file = URL(fileURLWithPath: daemon.stateDirectory + "/ports.json")
        try #"{"version":1,"ports":[{"name":"good","type":"vhost-user","socket":{"path":"good.sock"}},{"name":"bad/name","type":"vhost-user","socket":{"path":"b.sock"}}]}"#
            .write(to: file, atomically: true, encoding: .utf8)
        try daemon.startForAPITests()
        XCTAssertEqual(try daemon.api.request("GET", "/v1/ports/good").status, 200)
        XCTAssertTrue(daemon.output.contains("ports[1]"), daemon.output)
        let names = try FileManager.default.contentsOfDirectory(atPath: daemon.stateDirectory)
        XCTAssertTrue(names.contains { $0.hasPrefix("ports.json.corrupt-") }, "the original is kept: \(names)")
        XCTAssertTrue(names.contains("ports.json"), "the good entries are saved again")
        daemon.stop()
    }
}
