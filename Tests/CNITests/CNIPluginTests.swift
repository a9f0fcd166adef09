import Foundation
import TestSupport
import XCTest

/// The plugin binary against a live vhost-switchd, driven the way a container runtime drives it.
final class CNIPluginTests: XCTestCase {
    let plugin = CNIPlugin()
    let portName = "3f2a9c1d7b4e-net1"

    func testVersionListsSupportedVersions() throws {
        let outcome = try plugin.run("VERSION", config: #"{"cniVersion": "1.0.0"}"#)
        XCTAssertEqual(outcome.status, 0, outcome.stderr)
        XCTAssertEqual(outcome.json["cniVersion"] as? String, "1.0.0")
        let versions = outcome.json["supportedVersions"] as? [String] ?? []
        for version in ["0.4.0", "1.0.0", "1.1.0"] { XCTAssertTrue(versions.contains(version), "\(versions)") }
    }

    func testAddCheckDelDelAgain() throws {
        let live = try LiveSwitch()
        let config = live.config(["mode": "server", "mac": "02:aa:bb:cc:dd:01", "mtu": 9000, "queues": 2,
                                  "permissions": "0660", "owner": "\(getuid())", "group": "\(getgid())",
                                  "features": ["disable": ["mrg_rxbuf"]]])

        let add = try plugin.run("ADD", config: config)
        XCTAssertEqual(add.status, 0, "stdout: \(add.stdout) stderr: \(add.stderr)")
        // CNI 1.0.0 result: cniVersion, interfaces[] (each with a name), ips[], dns.
        XCTAssertEqual(add.json["cniVersion"] as? String, "1.0.0")
        let interfaces = add.json["interfaces"] as? [[String: Any]] ?? []
        XCTAssertEqual(interfaces.count, 2, add.stdout)
        XCTAssertTrue(interfaces.allSatisfy { ($0["name"] as? String)?.isEmpty == false })
        XCTAssertEqual(interfaces.first?["name"] as? String, portName)
        let pod = try XCTUnwrap(interfaces.first { $0["sandbox"] != nil })
        XCTAssertEqual(pod["name"] as? String, "net1")
        XCTAssertEqual(pod["sandbox"] as? String, plugin.netns)
        XCTAssertEqual(pod["mac"] as? String, "02:aa:bb:cc:dd:01")
        let socketPath = try XCTUnwrap(pod["socketPath"] as? String)
        XCTAssertEqual(socketPath, live.daemon.socketPath("pods/default_testpmd/net1.sock"))
        XCTAssertNotNil(add.json["ips"] as? [Any])
        XCTAssertNotNil(add.json["dns"] as? [String: Any])

        // The socket is there, listening, with the permissions asked for.
        let attributes = try FileManager.default.attributesOfItem(atPath: socketPath)
        XCTAssertEqual(attributes[.type] as? FileAttributeType, .typeSocket)
        XCTAssertEqual((attributes[.posixPermissions] as? NSNumber)?.intValue, 0o660)

        // The daemon has the port, as configured.
        let port = try live.get("/v1/ports/\(portName)")
        XCTAssertEqual(port.status, 200)
        XCTAssertEqual(port.json["type"] as? String, "vhost-user")
        XCTAssertEqual(port.json["mtu"] as? Int, 9000)
        XCTAssertEqual(port.json["queues"] as? Int, 2)
        XCTAssertEqual(port.json["mac"] as? String, "02:aa:bb:cc:dd:01")
        let socket = port.json["socket"] as? [String: Any] ?? [:]
        XCTAssertEqual(socket["path"] as? String, "pods/default_testpmd/net1.sock")
        XCTAssertEqual(socket["mode"] as? String, "server")
        let offered = ((port.json["features"] as? [String: Any])?["offered"] as? [String: Any])?["names"] as? [String] ?? []
        XCTAssertFalse(offered.contains("mrg_rxbuf"), "\(offered)")

        // ADD retried (the runtime timed out, say): the same port, the same result.
        let retried = try plugin.run("ADD", config: config)
        XCTAssertEqual(retried.status, 0, retried.stdout)

        // CHECK with the previous result, as the runtime passes it.
        let withPrevious = try addingPrevResult(config, add.stdout)
        let check = try plugin.run("CHECK", config: withPrevious)
        XCTAssertEqual(check.status, 0, "stdout: \(check.stdout) stderr: \(check.stderr)")
        XCTAssertEqual(check.stdout, "")

        // CHECK against a configuration the port does not match.
        let changed = try plugin.run("CHECK", config: live.config(["mode": "server", "mtu": 1500]))
        XCTAssertNotEqual(changed.status, 0)
        XCTAssertEqual(changed.errorCode, 101, changed.stdout)
        XCTAssertTrue((changed.json["details"] as? String ?? "").contains("mtu"), changed.stdout)

        let del = try plugin.run("DEL", config: withPrevious)
        XCTAssertEqual(del.status, 0, "stdout: \(del.stdout) stderr: \(del.stderr)")
        XCTAssertEqual(del.stdout, "")
        XCTAssertEqual(try live.get("/v1/ports/\(portName)").status, 404)
        XCTAssertFalse(FileManager.default.fileExists(atPath: socketPath))
        XCTAssertFalse(FileManager.default.fileExists(atPath: live.daemon.socketPath("pods/default_testpmd")), "the empty pod directory is removed")

        let again = try plugin.run("DEL", config: config)
        XCTAssertEqual(again.status, 0, "DEL is idempotent: \(again.stdout)")

        let checkGone = try plugin.run("CHECK", config: withPrevious)
        XCTAssertNotEqual(checkGone.status, 0)
        XCTAssertEqual(checkGone.errorCode, 101, checkGone.stdout)
    }

    func testClientModeAndDerivedNames() throws {
        let live = try LiveSwitch()
        var pod = plugin
        pod.containerID = "abc"
        pod.ifname = "vhu0"
        pod.args = ""
        let add = try pod.run("ADD", config: live.config(["mode": "client", "socketDir": "cni/vm", "mac": "auto"]))
        XCTAssertEqual(add.status, 0, add.stdout + add.stderr)
        let interfaces = add.json["interfaces"] as? [[String: Any]] ?? []
        XCTAssertEqual(interfaces.first?["name"] as? String, "abc-vhu0")
        let mac = try XCTUnwrap(interfaces.last?["mac"] as? String)
        XCTAssertTrue(mac.hasPrefix("02:"), mac)
        let port = try live.get("/v1/ports/abc-vhu0")
        XCTAssertEqual(port.status, 200)
        XCTAssertEqual((port.json["socket"] as? [String: Any])?["path"] as? String, "cni/vm/abc/vhu0.sock")
        XCTAssertEqual((port.json["socket"] as? [String: Any])?["mode"] as? String, "client")
        XCTAssertEqual(port.json["mac"] as? String, mac, "auto MAC is stable")
        XCTAssertEqual(try pod.run("CHECK", config: live.config(["mode": "client", "socketDir": "cni/vm", "mac": "auto"])).status, 0)
        XCTAssertEqual(try pod.run("DEL", config: live.config(["mode": "client", "socketDir": "cni/vm"])).status, 0)
        XCTAssertEqual(try live.get("/v1/ports/abc-vhu0").status, 404)
    }

    func testBadConfigurationIsACNIError() throws {
        let live = try LiveSwitch()
        func expectError(_ code: Int, _ config: String, command: String = "ADD", omit: Set<String> = [], file: StaticString = #filePath, line: UInt = #line) throws {
            let outcome = try plugin.run(command, config: config, omit: omit)
            XCTAssertNotEqual(outcome.status, 0, file: file, line: line)
            XCTAssertEqual(outcome.errorCode, code, outcome.stdout, file: file, line: line)
            XCTAssertNotNil(outcome.json["cniVersion"] as? String, file: file, line: line)
            XCTAssertFalse((outcome.json["msg"] as? String ?? "").isEmpty, file: file, line: line)
        }
        try expectError(6, #"{"cniVersion": "1.0.0", "name": "x""#)
        try expectError(7, live.config(["mode": "bogus"]))
        try expectError(7, live.config(["mac": "not-a-mac"]))
        try expectError(7, live.config(["mtu": 10]))
        try expectError(7, live.config(["socketDir": "../escape"]))
        try expectError(7, live.config(["api": "https://127.0.0.1:9870"]))
        try expectError(1, live.config(cniVersion: "9.9.9"))
        try expectError(4, live.config(), omit: ["CNI_CONTAINERID"])
        try expectError(4, live.config(), command: "FROB")
        // The daemon refuses a feature it does not know: invalid network configuration.
        try expectError(7, live.config(["features": ["disable": ["no_such_feature"]]]))
        XCTAssertEqual(try live.get("/v1/ports/\(portName)").status, 404, "nothing is left behind")
    }

    func testDaemonNotRunning() throws {
        // No daemon at all: ADD is "try again later" (11), DEL has nothing to do.
        let missing = "unix://" + NSTemporaryDirectory() + "no-such-dir-\(UUID().uuidString.prefix(6))/api.sock"
        let config = #"{"cniVersion": "1.0.0", "name": "vhost-net", "type": "vhost-switch-cni", "api": "\#(missing)"}"#
        let add = try plugin.run("ADD", config: config)
        XCTAssertNotEqual(add.status, 0)
        XCTAssertEqual(add.errorCode, 11, add.stdout)
        XCTAssertTrue((add.json["msg"] as? String ?? "").contains("unreachable"), add.stdout)
        XCTAssertEqual(try plugin.run("DEL", config: config).status, 0)
        let status = try plugin.run("STATUS", config: config.replacingOccurrences(of: "1.0.0", with: "1.1.0"))
        XCTAssertEqual(status.errorCode, 50, status.stdout)

        // A daemon that crashed and left its socket file behind: ADD and DEL both ask to retry.
        let live = try LiveSwitch()
        live.daemon.crash()
        let stale = live.config()
        let staleAdd = try plugin.run("ADD", config: stale)
        XCTAssertEqual(staleAdd.errorCode, 11, staleAdd.stdout)
        let staleDel = try plugin.run("DEL", config: stale)
        XCTAssertNotEqual(staleDel.status, 0)
        XCTAssertEqual(staleDel.errorCode, 11, staleDel.stdout)
    }

    func testIPAMIsDelegated() throws {
        let live = try LiveSwitch()
        let bin = URL(fileURLWithPath: live.daemon.baseDirectory + "/cni-bin")
        try FileManager.default.createDirectory(at: bin, withIntermediateDirectories: true)
        let log = bin.appendingPathComponent("calls.log").path
        // A fake IPAM plugin: logs its command and the config it got, answers like host-local.
        let script = """
            #!/bin/sh
            input=$(cat)
            echo "$CNI_COMMAND $CNI_CONTAINERID $CNI_IFNAME $input" >> \(log)
            if [ "$CNI_COMMAND" = ADD ]; then
              case "$input" in *fail-ipam*) echo '{"cniVersion":"1.0.0","code":11,"msg":"no addresses left"}'; exit 1;; esac
              echo '{"cniVersion":"1.0.0","ips":[{"address":"192.168.100.7/24","gateway":"192.168.100.1"}],"routes":[{"dst":"0.0.0.0/0"}],"dns":{}}'
            fi
            exit 0
            """
        let ipam = bin.appendingPathComponent("fake-ipam").path
        try script.write(toFile: ipam, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: ipam)
        var runtime = plugin
        runtime.cniPath = "/nonexistent:" + bin.path

        let config = live.config(["ipam": ["type": "fake-ipam", "subnet": "192.168.100.0/24"]])
        let add = try runtime.run("ADD", config: config)
        XCTAssertEqual(add.status, 0, add.stdout + add.stderr)
        let ips = add.json["ips"] as? [[String: Any]] ?? []
        XCTAssertEqual(ips.first?["address"] as? String, "192.168.100.7/24")
        XCTAssertEqual(ips.first?["interface"] as? Int, 1, "the index of the pod's interface")
        XCTAssertEqual((add.json["routes"] as? [[String: Any]])?.first?["dst"] as? String, "0.0.0.0/0")

        XCTAssertEqual(try runtime.run("DEL", config: config).status, 0)
        let calls = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(calls.map { $0.split(separator: " ").first.map(String.init) ?? "" }, ["ADD", "DEL"])
        XCTAssertTrue(calls[0].contains(plugin.containerID) && calls[0].contains("fake-ipam"), String(calls[0]))

        // The IPAM plugin's error comes back unchanged, and no port is left behind.
        let failing = live.config(["ipam": ["type": "fake-ipam", "note": "fail-ipam"]])
        let failed = try runtime.run("ADD", config: failing)
        XCTAssertNotEqual(failed.status, 0)
        XCTAssertEqual(failed.errorCode, 11, failed.stdout)
        XCTAssertEqual(failed.json["msg"] as? String, "no addresses left")
        XCTAssertEqual(try live.get("/v1/ports/\(portName)").status, 404)

        // An IPAM plugin that is not in CNI_PATH.
        let absent = try runtime.run("ADD", config: live.config(["ipam": ["type": "host-local-missing"]]))
        XCTAssertEqual(absent.errorCode, 102, absent.stdout)
    }

    func testGCAndStatus() throws {
        let live = try LiveSwitch()
        let config = live.config(cniVersion: "1.1.0")
        var first = plugin
        first.containerID = "aaaaaaaaaaaa1111"
        first.args = ""
        var second = plugin
        second.containerID = "bbbbbbbbbbbb2222"
        second.args = ""
        XCTAssertEqual(try first.run("ADD", config: config).status, 0)
        XCTAssertEqual(try second.run("ADD", config: config).status, 0)
        // A port this network did not create is never collected.
        var other = plugin
        other.containerID = "cccccccccccc3333"
        other.args = ""
        XCTAssertEqual(try other.run("ADD", config: live.config(cniVersion: "1.1.0", name: "other-net")).status, 0)

        XCTAssertEqual(try plugin.run("STATUS", config: config).status, 0)

        let gcConfig = live.config(["cni.dev/valid-attachments": [["containerID": first.containerID, "ifname": "net1"]]], cniVersion: "1.1.0")
        let gc = try plugin.run("GC", config: gcConfig)
        XCTAssertEqual(gc.status, 0, gc.stdout + gc.stderr)
        XCTAssertEqual(try live.get("/v1/ports/aaaaaaaaaaaa-net1").status, 200)
        XCTAssertEqual(try live.get("/v1/ports/bbbbbbbbbbbb-net1").status, 404)
        XCTAssertEqual(try live.get("/v1/ports/cccccccccccc-net1").status, 200)

        // GC is a 1.1.0 command.
        XCTAssertEqual(try plugin.run("GC", config: live.config()).errorCode, 1)
    }

    func testTCPWithBearerToken() throws {
        let port = Int.random(in: 20000..<60000)
        let tokenFile = NSTemporaryDirectory() + "cni-token-\(UUID().uuidString.prefix(6))"
        try "s3cret-token-for-tests\n".write(toFile: tokenFile, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: tokenFile)
        defer { try? FileManager.default.removeItem(atPath: tokenFile) }
        let live = try LiveSwitch(extraArguments: ["--listen", "127.0.0.1:\(port)", "--api-token-file", tokenFile])
        let api = "http://127.0.0.1:\(port)"
        let add = try plugin.run("ADD", config: live.config(["api": api, "apiTokenFile": tokenFile]))
        XCTAssertEqual(add.status, 0, add.stdout + add.stderr + live.daemon.output)
        XCTAssertEqual(try live.get("/v1/ports/\(portName)").status, 200)

        let unauthorized = try plugin.run("CHECK", config: live.config(["api": api]))
        XCTAssertEqual(unauthorized.errorCode, 100, unauthorized.stdout)
        XCTAssertTrue((unauthorized.json["msg"] as? String ?? "").contains("apiTokenFile"), unauthorized.stdout)

        XCTAssertEqual(try plugin.run("DEL", config: live.config(["api": api, "apiTokenFile": tokenFile])).status, 0)
        XCTAssertEqual(try live.get("/v1/ports/\(portName)").status, 404)
    }

    private func addingPrevResult(_ config: String, _ result: String) throws -> String {
        var object = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(config.utf8)) as? [String: Any])
        object["prevResult"] = try JSONSerialization.jsonObject(with: Data(result.utf8))
        return String(decoding: try JSONSerialization.data(withJSONObject: object), as: UTF8.self)
    }
}
