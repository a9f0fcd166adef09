import Foundation
import TestSupport
import VhostSystem
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
        let plugin = live.plugin()
        let deviceInfoFile = live.deviceInfoDirectory + "/default-testpmd-net1.json"
        let config = live.config(["mode": "server", "mac": "02:aa:bb:cc:dd:01", "mtu": 9000, "queues": 2,
                                  "permissions": "0660", "owner": "\(getuid())", "group": "\(getgid())",
                                  "features": ["disable": ["mrg_rxbuf"]], "podSocketDir": "/var/run/vhost-switch",
                                  "runtimeConfig": ["CNIDeviceInfoFile": deviceInfoFile]])

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

        // The NPWG device-info file: the pod's side (the switch listens: the pod is the
        // client) and the socket where the pod mounts its directory.
        let deviceInfo = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: deviceInfoFile))) as? [String: Any])
        XCTAssertEqual(deviceInfo["type"] as? String, "vhost-user")
        XCTAssertEqual(deviceInfo["version"] as? String, "1.1.0")
        XCTAssertEqual((deviceInfo["vhost-user"] as? [String: Any])?["mode"] as? String, "client")
        XCTAssertEqual((deviceInfo["vhost-user"] as? [String: Any])?["path"] as? String, "/var/run/vhost-switch/net1.sock")

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

    /// No "mode": the switch is the client (the default since issue 20); "client" says the same.
    func testDefaultClientModeAndDerivedNames() throws {
        let live = try LiveSwitch()
        var pod = live.plugin()
        pod.containerID = "abc"
        pod.ifname = "vhu0"
        pod.args = ""
        let add = try pod.run("ADD", config: live.config(["socketDir": "cni/vm", "mac": "auto"]))
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
        // The pod's front-end listens on the socket (QEMU server=on); DEL removes what it
        // leaves behind, and the directory the plugin created for the pod.
        let socket = live.daemon.socketPath("cni/vm/abc/vhu0.sock")
        try UnixSocket.listen(path: socket).close()
        XCTAssertEqual(try pod.run("DEL", config: live.config(["mode": "client", "socketDir": "cni/vm"])).status, 0)
        XCTAssertEqual(try live.get("/v1/ports/abc-vhu0").status, 404)
        XCTAssertFalse(FileManager.default.fileExists(atPath: socket))
        XCTAssertFalse(FileManager.default.fileExists(atPath: live.daemon.socketPath("cni/vm/abc")))
    }

    func testBadConfigurationIsACNIError() throws {
        let live = try LiveSwitch()
        let plugin = live.plugin()
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
        try expectError(7, live.config(["api": "http://127.0.0.1:9870"]))
        try expectError(7, live.config(["vlan": 4095]))
        try expectError(7, live.config(["macSpoofCheck": true]))
        try expectError(1, live.config(cniVersion: "9.9.9"))
        try expectError(4, live.config(), omit: ["CNI_CONTAINERID"])
        try expectError(4, live.config(), command: "FROB")
        // The daemon refuses a feature it does not know: invalid network configuration.
        try expectError(7, live.config(["features": ["disable": ["no_such_feature"]]]))
        XCTAssertEqual(try live.get("/v1/ports/\(portName)").status, 404, "nothing is left behind")
        XCTAssertFalse(FileManager.default.fileExists(atPath: live.daemon.socketPath("pods/default_testpmd")), "nor the pod directory")
    }

    func testDaemonNotRunning() throws {
        // No daemon at all (no socket directory, no API socket): ADD is "try again later"
        // (11), DEL has nothing to do.
        let missingDirectory = NSTemporaryDirectory() + "ops-cni-no-daemon-\(UUID().uuidString.prefix(6))"
        var plugin = self.plugin
        plugin.settingsFile = try CNIPlugin.writeSettings(["allowedDirectories": [missingDirectory + "/run"], "socketDirectory": missingDirectory + "/sockets",
                                                           "dataDirectory": missingDirectory + "/data"],
                                                          in: missingDirectory + "/settings")
        defer { try? FileManager.default.removeItem(atPath: missingDirectory) }
        let missing = "unix://" + missingDirectory + "/run/api.sock"
        let config = #"{"cniVersion": "1.0.0", "name": "vhost-net", "type": "vhost-switch-cni", "api": "\#(missing)"}"#
        let add = try plugin.run("ADD", config: config)
        XCTAssertNotEqual(add.status, 0)
        XCTAssertEqual(add.errorCode, 11, add.stdout)
        XCTAssertTrue((add.json["msg"] as? String ?? "").contains("daemon"), add.stdout)
        XCTAssertEqual(try plugin.run("DEL", config: config).status, 0)
        let status = try plugin.run("STATUS", config: config.replacingOccurrences(of: "1.0.0", with: "1.1.0"))
        XCTAssertEqual(status.errorCode, 50, status.stdout)

        // A daemon that crashed and left its socket file behind: ADD and DEL both ask to retry.
        let live = try LiveSwitch()
        plugin = live.plugin()
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
        var runtime = live.plugin()
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
        let plugin = live.plugin()
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

    /// issue 19: the API socket and the token file only where the node's administrator allows.
    func testAPIAndTokenFileOnlyFromTheAllowList() throws {
        let live = try LiveSwitch()
        let plugin = live.plugin()
        let token = live.secretsDirectory + "/token"
        try "s3cret-token-for-tests\n".write(toFile: token, atomically: true, encoding: .utf8)
        let add = try plugin.run("ADD", config: live.config(["apiTokenFile": token]))
        XCTAssertEqual(add.status, 0, add.stdout + add.stderr)

        // A token file anywhere else is refused before it is opened.
        let outside = live.daemon.baseDirectory + "/token-outside"
        try "leak-me\n".write(toFile: outside, atomically: true, encoding: .utf8)
        let refused = try plugin.run("CHECK", config: live.config(["apiTokenFile": outside]))
        XCTAssertEqual(refused.errorCode, 7, refused.stdout)
        XCTAssertTrue((refused.json["msg"] as? String ?? "").contains("apiTokenFile"), refused.stdout)
        // Nor through a symlink in an allowed directory.
        try FileManager.default.createSymbolicLink(atPath: live.secretsDirectory + "/link", withDestinationPath: outside)
        let linked = try plugin.run("CHECK", config: live.config(["apiTokenFile": live.secretsDirectory + "/link"]))
        XCTAssertEqual(linked.errorCode, 5, linked.stdout)

        // An API socket outside the allow-list (here the daemon's own, with settings that do
        // not list its directory) is refused, and nothing is created.
        var elsewhere = live.plugin()
        elsewhere.containerID = "dddddddddddd4444"
        elsewhere.settingsFile = try CNIPlugin.writeSettings(["allowedDirectories": ["/run/vhost-switch"], "socketDirectory": live.daemon.socketDirectory],
                                                             in: live.daemon.baseDirectory + "/other-settings")
        let outsideAPI = try elsewhere.run("ADD", config: live.config())
        XCTAssertEqual(outsideAPI.errorCode, 7, outsideAPI.stdout)
        XCTAssertTrue((outsideAPI.json["details"] as? String ?? "").contains("allowed"), outsideAPI.stdout)
        XCTAssertEqual(try live.get("/v1/ports/dddddddddddd-net1").status, 404)

        // Settings a non-root user could have written are refused: writable by others, or
        // owned by another user (uid 1) with root's mode.
        try FileManager.default.setAttributes([.posixPermissions: 0o666], ofItemAtPath: live.settingsFile)
        let writable = try plugin.run("CHECK", config: live.config())
        XCTAssertEqual(writable.errorCode, 4, writable.stdout)
        XCTAssertTrue((writable.json["details"] as? String ?? "").contains("mode 666"), writable.stdout)
        try FileManager.default.setAttributes([.posixPermissions: 0o644, .ownerAccountID: 1], ofItemAtPath: live.settingsFile)
        let foreign = try plugin.run("CHECK", config: live.config())
        XCTAssertEqual(foreign.errorCode, 4, foreign.stdout)
        XCTAssertTrue((foreign.json["msg"] as? String ?? "").contains("must be owned by root"), foreign.stdout)
        XCTAssertTrue((foreign.json["details"] as? String ?? "").contains("owner 1,"), foreign.stdout)
        try FileManager.default.setAttributes([.ownerAccountID: 0], ofItemAtPath: live.settingsFile)

        XCTAssertEqual(try plugin.run("DEL", config: live.config(["apiTokenFile": token])).status, 0)
        XCTAssertEqual(try live.get("/v1/ports/\(portName)").status, 404)
    }

    /// issue 19: DEL removes only what the plugin created in its socket directory, and never
    /// a path the API names, so a fake API cannot make root unlink anything.
    func testDELRemovesOnlyThePluginsOwnFiles() throws {
        let live = try LiveSwitch()
        let plugin = live.plugin()
        // A directory and socket the plugin did not create, where this pod's would be.
        let foreign = live.daemon.socketPath("pods/default_testpmd")
        try FileManager.default.createDirectory(atPath: foreign, withIntermediateDirectories: true)
        try UnixSocket.listen(path: foreign + "/net1.sock").close()
        XCTAssertEqual(try plugin.run("DEL", config: live.config(["mode": "client"])).status, 0)
        XCTAssertEqual(FileSystem.kind(at: foreign + "/net1.sock"), .socket)

        // A symlink in socketDir, to a directory that looks like one of ours.
        var linked = plugin
        linked.args = "K8S_POD_NAMESPACE=default;K8S_POD_NAME=linked"
        XCTAssertEqual(try linked.run("ADD", config: live.config(["mode": "client"])).status, 0)
        let real = live.daemon.socketPath("pods/default_linked")
        try UnixSocket.listen(path: real + "/net1.sock").close()
        let moved = live.daemon.baseDirectory + "/moved"
        try FileManager.default.moveItem(atPath: real, toPath: moved)
        try FileManager.default.createSymbolicLink(atPath: real, withDestinationPath: moved)
        XCTAssertEqual(try linked.run("DEL", config: live.config(["mode": "client"])).status, 0)
        XCTAssertEqual(FileSystem.kind(at: moved + "/net1.sock"), .socket)
        XCTAssertEqual(FileSystem.kind(at: real), .symlink)

        // A fake API that names a victim socket as the port's absolute_path.
        let victim = live.daemon.baseDirectory + "/victim.sock"
        try UnixSocket.listen(path: victim).close()
        let fakeAPI = live.secretsDirectory + "/fake-api.sock"
        let server = try FakeAPIServer(path: fakeAPI, port: #"{"name": "x", "type": "vhost-user", "socket": {"path": "../victim.sock", "absolute_path": "\#(victim)", "mode": "client"}}"#)
        defer { server.stop() }
        let fake = try plugin.run("DEL", config: live.config(["api": "unix://" + fakeAPI, "mode": "client"]))
        XCTAssertEqual(fake.status, 0, fake.stdout + fake.stderr)
        XCTAssertTrue(server.sawDelete, "the plugin asked the fake API to delete the port")
        XCTAssertEqual(FileSystem.kind(at: victim), .socket)
    }

    /// issue 18 item 4: the plugin's policy keys reach the daemon. Passes once the daemon
    /// accepts vlan, trunk, allowed_macs, max_macs and rate_limit in POST /v1/ports.
    func testPolicyKeysReachTheDaemon() throws {
        let live = try LiveSwitch()
        let plugin = live.plugin()
        let config = live.config(["mac": "02:aa:bb:cc:dd:07", "vlan": 10, "trunk": [20, 30], "macSpoofCheck": true, "maxMacs": 16,
                                  "rateLimit": ["pps": 100000, "burst": 500]])
        let add = try plugin.run("ADD", config: config)
        guard add.status == 0 else { return XCTFail("ADD failed: \(add.stdout) \(add.stderr)") }
        let port = try live.get("/v1/ports/\(portName)")
        XCTAssertEqual(port.json["vlan"] as? Int, 10)
        XCTAssertEqual(port.json["trunk"] as? [Int], [20, 30])
        XCTAssertEqual(port.json["allowed_macs"] as? [String], ["02:aa:bb:cc:dd:07"])
        XCTAssertEqual(port.json["max_macs"] as? Int, 16)
        XCTAssertEqual((port.json["rate_limit"] as? [String: Any])?["pps"] as? Int, 100000)
        XCTAssertEqual((port.json["rate_limit"] as? [String: Any])?["burst"] as? Int, 500)
        let check = try plugin.run("CHECK", config: config)
        XCTAssertEqual(check.status, 0, check.stdout)
        let changed = try plugin.run("CHECK", config: live.config(["mac": "02:aa:bb:cc:dd:07", "vlan": 11]))
        XCTAssertEqual(changed.errorCode, 101, changed.stdout)
        XCTAssertEqual(try plugin.run("DEL", config: config).status, 0)
    }

    private func addingPrevResult(_ config: String, _ result: String) throws -> String {
        var object = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(config.utf8)) as? [String: Any])
        object["prevResult"] = try JSONSerialization.jsonObject(with: Data(result.utf8))
        return String(decoding: try JSONSerialization.data(withJSONObject: object), as: UTF8.self)
    }
}
