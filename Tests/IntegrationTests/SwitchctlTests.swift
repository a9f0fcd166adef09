// vhost-switchctl end to end: the built binary against a live vhost-switchd, every command
// in both output modes (tables: headers and the port's rows; --json: the API's fields), and
// the error exits (the daemon's refusal 1, usage 64, no daemon 69).
import Foundation
import TestSupport
import VhostSystem
import XCTest

final class SwitchctlEndToEndTests: XCTestCase {
    private var daemon: SwitchDaemonProcess!
    private var ctl: Switchctl!

    override func setUpWithError() throws {
        if let reason = IntegrationEnvironment.printedDaemonSkipReason(name) { throw XCTSkip(reason) }
        guard FileManager.default.isExecutableFile(atPath: Switchctl.executablePath) else {
            throw XCTSkip("vhost-switchctl is not built next to the tests (\(Switchctl.executablePath)); run swift build first")
        }
        daemon = try SwitchDaemonProcess(extraArguments: ["--pmd-threads", "2"])
        try daemon.waitUntilHealthy()
        ctl = Switchctl(api: daemon.apiSocketPath)
    }

    override func tearDown() {
        daemon?.stop()
    }

    /// Runs a command that must succeed; its outcome.
    @discardableResult
    private func ok(_ arguments: String..., file: StaticString = #filePath, line: UInt = #line) throws -> Switchctl.Outcome {
        let outcome = try ctl.run(arguments)
        XCTAssertEqual(outcome.status, 0, "\(arguments): \(outcome)", file: file, line: line)
        XCTAssertEqual(outcome.stderr, "", "\(arguments)", file: file, line: line)
        return outcome
    }

    /// Every line's cells (split on runs of spaces).
    private func rows(_ output: String) -> [[String]] {
        output.split(separator: "\n").map { (line: Substring) -> [String] in line.split(separator: " ").map(String.init) }
    }

    /// The first line of a table that starts with `first`.
    private func row(_ output: String, _ first: String) -> [String]? {
        rows(output).first { $0.first == first }
    }

    private func header(_ output: String, contains columns: [String], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertTrue(output.split(separator: "\n").contains { text in columns.allSatisfy { text.contains($0) } },
                      "no header with \(columns) in:\n\(output)", file: file, line: line)
    }

    func testPortsAndFeatures() throws {
        // port add, both types, both output modes.
        let added = try ok("port", "add", "vm1", "vhost-user", "vm1.sock", "--queues", "2", "--mtu", "1500", "--mac", "02:00:00:00:00:01")
        XCTAssertEqual(row(added.stdout, "name"), ["name", "vm1"])
        XCTAssertEqual(row(added.stdout, "socket.mode"), ["socket.mode", "server"])
        let client = try ok("port", "add", "vm2", "vhost-user", "vm2.sock", "--mode", "client", "--json")
        XCTAssertEqual(client.object["name"] as? String, "vm2")
        XCTAssertEqual((client.object["socket"] as? [String: Any])?["mode"] as? String, "client")
        let kernel = try ok("port", "add", "up", "af-packet", "lo", "--json")
        XCTAssertEqual(kernel.object["interface"] as? String, "lo")

        // ports
        let table = try ok("ports")
        header(table.stdout, contains: ["NAME", "TYPE", "ID", "STATE", "SOCKET/INTERFACE", "MODE", "QUEUES"])
        XCTAssertEqual(row(table.stdout, "vm1"), ["vm1", "vhost-user", "0", "listening", daemon.socketPath("vm1.sock"), "server", "2", "-", "-"])
        XCTAssertEqual(row(table.stdout, "up")?.prefix(5), ["up", "af-packet", "2", "-", "lo"])
        let list = try ok("ports", "--json")
        XCTAssertEqual((list.object["ports"] as? [[String: Any]])?.compactMap { $0["name"] as? String }, ["vm1", "vm2", "up"])

        // port show
        let shown = try ok("port", "show", "vm1")
        header(shown.stdout, contains: ["FIELD", "VALUE"])
        XCTAssertEqual(row(shown.stdout, "mac"), ["mac", "02:00:00:00:00:01"])
        XCTAssertEqual(row(shown.stdout, "mtu"), ["mtu", "1500"])
        XCTAssertEqual(row(shown.stdout, "socket.absolute_path"), ["socket.absolute_path", daemon.socketPath("vm1.sock")])
        let shownJSON = try ok("port", "show", "vm1", "--json")
        XCTAssertEqual(shownJSON.object["queues"] as? Int, 2)
        XCTAssertEqual(shownJSON.object["state"] as? String, "listening")

        // features, read and changed (a value starting with '-' is the option's value)
        let features = try ok("features", "vm1")
        header(features.stdout, contains: ["FEATURE", "OFFERED", "NEGOTIATED"])
        header(features.stdout, contains: ["PROTOCOL FEATURE", "OFFERED", "NEGOTIATED"])
        XCTAssertEqual(row(features.stdout, "mrg_rxbuf"), ["mrg_rxbuf", "yes", "-"])
        let disabled = try ok("features", "vm1", "--offer", "-mrg_rxbuf", "--json")
        let offered = (disabled.object["offered"] as? [String: Any])?["names"] as? [String]
        XCTAssertEqual(offered?.contains("mrg_rxbuf"), false)
        XCTAssertEqual(offered?.contains("csum"), true)
        XCTAssertEqual(disabled.object["applies"] as? String, "now")
        let enabled = try ok("features", "vm1", "--offer", "+mrg_rxbuf")
        XCTAssertEqual(row(enabled.stdout, "mrg_rxbuf"), ["mrg_rxbuf", "yes", "-"])
        XCTAssertTrue(enabled.stdout.contains("applies: now"), enabled.stdout)

        // port del, both modes; the port is gone
        XCTAssertEqual(try ok("port", "del", "vm2").stdout, "deleted port vm2\n")
        XCTAssertEqual(try ok("port", "delete", "up", "--json").stdout, "{}\n")
        XCTAssertEqual((try ok("ports", "--json").object["ports"] as? [[String: Any]])?.compactMap { $0["name"] as? String }, ["vm1"])
    }

    /// stats with a connected vhost-user port (a fake front-end with both rings running) and
    /// an af-packet port: per port, per queue, per poll thread, and the rx-queue placement.
    func testStatsShowQueuesThreadsAndPlacement() throws {
        try ok("port", "add", "vm1", "vhost-user", "vm1.sock")
        let kernel = try ok("port", "add", "up", "af-packet", "lo")
        header(kernel.stdout, contains: ["FIELD", "VALUE"])
        XCTAssertEqual(row(kernel.stdout, "name"), ["name", "up"])
        XCTAssertEqual(row(kernel.stdout, "type"), ["type", "af-packet"])
        XCTAssertEqual(row(kernel.stdout, "interface"), ["interface", "lo"])
        let frontend = try FakeFrontend.connect(path: daemon.socketPath("vm1.sock"))
        defer { frontend.close() }
        let memory = try FakeFrontendMemory()
        let features = try XCTUnwrap(frontend.request(.getFeatures)?.u64) & ~(UInt64(1) << 26) & ~(UInt64(1) << 34)  // no LOG_ALL, split rings
        XCTAssertTrue(try frontend.negotiate(features: features, memory: memory))
        let kicks = [try EventFD(), try EventFD()]
        for ring in 0..<2 {
            XCTAssertTrue(try frontend.setUpRing(ring, memory: memory, kick: kicks[ring].descriptor, call: nil))
            XCTAssertTrue(try frontend.enableRing(ring))
        }
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline, (try daemon.api.request("GET", "/v1/ports/vm1").object["state"] as? String) != "ready" {
            Thread.sleep(forTimeInterval: 0.05)
        }

        // features --json (no --offer): the API's answer, with what the front-end negotiated.
        let shown = try ok("features", "vm1", "--json")
        let offered = try XCTUnwrap(shown.object["offered"] as? [String: Any], shown.stdout)
        let negotiated = try XCTUnwrap(shown.object["negotiated"] as? [String: Any], shown.stdout)
        XCTAssertEqual(negotiated["mask"] as? String, "0x" + String(features, radix: 16), shown.stdout)
        let offeredNames = Set(offered["names"] as? [String] ?? []), negotiatedNames = Set(negotiated["names"] as? [String] ?? [])
        XCTAssertTrue(offeredNames.contains("ring_packed") && offeredNames.contains("log_all"), shown.stdout)
        XCTAssertEqual(offeredNames.subtracting(negotiatedNames), ["ring_packed", "log_all"], "all offered but what the front-end left out")
        XCTAssertNil(shown.object["applies"], "a read changes nothing: \(shown.stdout)")

        let stats = try ok("stats")
        header(stats.stdout, contains: ["PORT", "STATE", "RX PACKETS", "RX BYTES", "TX PACKETS", "DROPS"])
        XCTAssertEqual(row(stats.stdout, "vm1")?.prefix(2), ["vm1", "ready"])
        XCTAssertEqual(row(stats.stdout, "up")?.prefix(2), ["up", "up"])
        header(stats.stdout, contains: ["PORT", "VRING", "PMD", "PACKETS", "BYTES", "DROPS"])
        let queueRows = rows(stats.stdout).filter { $0.first == "vm1" && $0.count == 6 }
        XCTAssertEqual(queueRows.map { $0[1] }, ["0", "1"], stats.stdout)
        header(stats.stdout, contains: ["PMD", "ITERATIONS", "PACKETS", "BUSY", "CYCLES/PACKET", "SLEEPS"])
        XCTAssertNotNil(row(stats.stdout, "0"), stats.stdout)
        XCTAssertNotNil(row(stats.stdout, "1"), stats.stdout)
        XCTAssertTrue(stats.stdout.contains("rx-queue placement\npmd thread 0:\n"), stats.stdout)
        XCTAssertTrue(stats.stdout.contains("pmd thread 1:\n"), stats.stdout)
        // Both receive queues (vm1's guest transmit ring 1, up's socket) are placed on some thread.
        let placed = stats.stdout.components(separatedBy: "rx-queue placement").last ?? ""
        XCTAssertEqual(row(placed, "vm1")?.dropFirst().first, "1", placed)
        XCTAssertNotNil(row(placed, "up"), placed)

        let json = try ok("stats", "--json")
        let ports = try XCTUnwrap(json.object["ports"] as? [[String: Any]])
        XCTAssertEqual(Set(ports.compactMap { $0["name"] as? String }), ["vm1", "up"])
        let vm1 = try XCTUnwrap(ports.first { $0["name"] as? String == "vm1" })
        XCTAssertEqual((vm1["vrings"] as? [[String: Any]])?.compactMap { $0["index"] as? Int }, [0, 1])
        let threads = try XCTUnwrap(json.object["poll_threads"] as? [[String: Any]])
        XCTAssertEqual(threads.count, 2)
        let queues = threads.flatMap { ($0["queues"] as? [[String: Any]]) ?? [] }.map { "\($0["port"] ?? "")/\($0["vring"] ?? "")" }
        XCTAssertTrue(queues.contains("vm1/1") && queues.contains("up/0"), "\(queues)")
    }

    /// fdb learns the MAC of a namespace behind an af-packet port; --flush empties it.
    func testForwardingDatabase() throws {
        if let reason = NetworkNamespaceFixture.skipReason() { throw XCTSkip(reason) }
        let namespace = try NetworkNamespaceFixture(tag: "opscli")
        defer { namespace.destroy() }
        try ok("port", "add", "kernel", "af-packet", namespace.hostInterface)
        let mac = try namespace.inside(["cat", "/sys/class/net/\(namespace.namespaceInterface)/address"]).output
            .trimmingCharacters(in: .whitespacesAndNewlines)
        try namespace.assignAddress("10.251.7.1/24")
        let deadline = Date().addingTimeInterval(10)
        var learned = false
        while !learned && Date() < deadline {
            // Each ping broadcasts an ARP request for an address nobody has: the switch learns its source.
            _ = try namespace.inside(["ping", "-c", "1", "-W", "1", "10.251.7.2"], check: false)
            learned = ((try daemon.api.request("GET", "/v1/fdb").object["entries"] as? [[String: Any]]) ?? []).contains { $0["mac"] as? String == mac }
        }
        XCTAssertTrue(learned, "the switch did not learn \(mac)")

        let table = try ok("fdb")
        header(table.stdout, contains: ["MAC", "PORT", "PORT ID", "AGE s"])
        XCTAssertEqual(row(table.stdout, mac)?.prefix(3), [mac, "kernel", "0"])
        let json = try ok("fdb", "--json")
        XCTAssertEqual(json.object["capacity"] as? Int, 8192)
        XCTAssertTrue(((json.object["entries"] as? [[String: Any]]) ?? []).contains { $0["mac"] as? String == mac && $0["port"] as? String == "kernel" })

        let flushed = try ok("fdb", "--flush")
        let removed = try XCTUnwrap(flushed.stdout.split(separator: " ").dropFirst().first.flatMap { Int($0) }, flushed.stdout)
        XCTAssertGreaterThanOrEqual(removed, 1)
        XCTAssertEqual(try ok("fdb", "--flush", "--json").object["removed"] as? Int, 0)
    }

    func testEventsHistoryAndFollow() throws {
        try ok("port", "add", "vm1", "vhost-user", "vm1.sock")
        let table = try ok("events")
        header(table.stdout, contains: ["ID", "TIME", "TYPE", "PORT", "DATA"])
        XCTAssertEqual(row(table.stdout, "1")?.dropFirst(2), ["port.created", "vm1"])
        let history = try XCTUnwrap(try ok("events", "--json").json as? [[String: Any]])
        XCTAssertEqual(history.first?["type"] as? String, "port.created")
        XCTAssertEqual(history.first?["port"] as? String, "vm1")
        XCTAssertEqual((try ok("events", "--type", "port.deleted", "--json").json as? [Any])?.count, 0)

        // --follow: the history first, then each new event as it happens, in both modes.
        let followedTable = try ctl.start(["events", "--follow"])
        let followedJSON = try ctl.start(["events", "--follow", "--json", "--port", "vm2"])
        defer { followedTable.stop(); followedJSON.stop() }
        XCTAssertTrue(followedTable.waitForOutput(containing: ["port.created"]), followedTable.output + followedTable.errorOutput)
        try ok("port", "add", "vm2", "vhost-user", "vm2.sock")
        try ok("port", "del", "vm2")
        XCTAssertTrue(followedTable.waitForOutput(containing: ["port.deleted"]), followedTable.output + followedTable.errorOutput)
        XCTAssertEqual(row(followedTable.output, "2")?.dropFirst(2), ["port.created", "vm2"])
        XCTAssertEqual(row(followedTable.output, "3")?.dropFirst(2), ["port.deleted", "vm2"])
        XCTAssertTrue(followedJSON.waitForOutput(containing: ["port.deleted"]), followedJSON.output + followedJSON.errorOutput)
        let lines = followedJSON.output.split(separator: "\n").map { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        XCTAssertEqual(lines.map { $0?["type"] as? String }, ["port.created", "port.deleted"])
        XCTAssertEqual(lines.map { $0?["port"] as? String }, ["vm2", "vm2"])
        XCTAssertTrue(followedTable.isRunning && followedJSON.isRunning, "--follow ended by itself")
    }

    func testLogLevel() throws {
        XCTAssertEqual(try ok("log-level").stdout, "log level: info\n")
        XCTAssertEqual(try ok("log-level", "debug", "--json").object["level"] as? String, "debug")
        XCTAssertEqual(try ok("log-level", "--json").object["level"] as? String, "debug")
        XCTAssertEqual(try ok("log-level", "warning").stdout, "log level: warning\n")
        XCTAssertEqual(try daemon.api.request("GET", "/v1/log-level").object["level"] as? String, "warning")
    }

    /// PATCH /v1/ports/{name} (issue 18): vlan through `port add --vlan` and `port set`, in
    /// both output modes, shown by `port show` and `ports`.
    func testPortSetVLANThroughPatch() throws {
        try ok("port", "add", "vm1", "vhost-user", "vm1.sock")
        let set = try ctl.run(["port", "set", "vm1", "vlan=10", "trunk=30,40", "--json"])
        // One failure says it; the rest depends on it.
        guard set.status == 0 else { return XCTFail("PATCH /v1/ports/{name} refused the patch: \(set)") }
        XCTAssertEqual(set.object["vlan"] as? Int, 10)
        XCTAssertEqual(row(try ok("port", "show", "vm1").stdout, "vlan"), ["vlan", "10"])
        XCTAssertEqual(row(try ok("ports").stdout, "vm1")?.suffix(2), ["10", "30,40"])
        // The table: the port after the change, one field a row.
        let changed = try ok("port", "set", "vm1", "vlan=20")
        header(changed.stdout, contains: ["FIELD", "VALUE"])
        XCTAssertEqual(row(changed.stdout, "name"), ["name", "vm1"])
        XCTAssertEqual(row(changed.stdout, "vlan"), ["vlan", "20"])
        XCTAssertEqual(row(changed.stdout, "trunk"), ["trunk", "30,40"])
        let reset = try ok("port", "set", "vm1", "vlan=none", "trunk=none")
        XCTAssertEqual(row(reset.stdout, "vlan"), ["vlan", "-"])
        XCTAssertEqual(row(reset.stdout, "trunk"), ["trunk", "-"])
        XCTAssertTrue(try ok("port", "show", "vm1", "--json").object["vlan"] is NSNull)
        let added = try ok("port", "add", "vm2", "vhost-user", "vm2.sock", "--vlan", "20", "--json")
        XCTAssertEqual(added.object["vlan"] as? Int, 20)
    }

    func testErrorExits() throws {
        try ok("port", "add", "vm1", "vhost-user", "vm1.sock")
        try ok("port", "add", "up", "af-packet", "lo")
        // The daemon's refusal: exit 1, its error code and message on stderr, nothing on stdout.
        for mode in [[], ["--json"]] {
            let unknown = try ctl.run(["port", "show", "nope"] + mode)
            XCTAssertEqual(unknown.status, 1, "\(unknown)")
            XCTAssertEqual(unknown.stdout, "")
            XCTAssertEqual(unknown.stderr, "vhost-switchctl: GET /v1/ports/nope: HTTP 404: port_not_found: no port named \"nope\"\n")
        }
        for arguments in [["port", "del", "nope"], ["features", "nope"], ["port", "set", "nope", "vlan=1"]] {
            let outcome = try ctl.run(arguments)
            XCTAssertEqual(outcome.status, 1, "\(arguments): \(outcome)")
            XCTAssertTrue(outcome.stderr.contains("HTTP 40"), "\(arguments): \(outcome)")
        }
        let duplicate = try ctl.run(["port", "add", "vm1", "vhost-user", "other.sock"])
        XCTAssertEqual(duplicate.status, 1)
        XCTAssertTrue(duplicate.stderr.contains("HTTP 409: port_exists"), "\(duplicate)")
        let notVhost = try ctl.run(["features", "up"])
        XCTAssertEqual(notVhost.status, 1)
        XCTAssertTrue(notVhost.stderr.contains("not_vhost_user"), "\(notVhost)")
        let badLevel = try ctl.run(["log-level", "loud"])
        XCTAssertEqual(badLevel.status, 1)
        XCTAssertTrue(badLevel.stderr.contains("invalid_log_level: level must be one of trace, debug"), "\(badLevel)")

        // Usage: exit 64 before anything is sent, with what is wrong.
        for (arguments, message) in [(["port", "set", "vm1", "vlan=abc"], #"vlan=abc: "abc" is not a non-negative integer"#),
                                     (["port", "set", "vm1", "vlan"], #""vlan" is not KEY=VALUE"#),
                                     (["port", "set", "vm1", "color=red"], #"unknown key "color""#),
                                     (["port", "add", "x", "af-packet", "lo", "--queues", "2"], "are for vhost-user ports"),
                                     (["features", "vm1", "--offer", "+a,-a"], "a is both enabled and disabled")] {
            let outcome = try ctl.run(arguments)
            XCTAssertEqual(outcome.status, 64, "\(arguments): \(outcome)")
            XCTAssertTrue(outcome.stderr.contains(message), "\(arguments): \(outcome)")
            XCTAssertEqual(outcome.stdout, "")
        }
        let unknownCommand = try Switchctl(api: nil).run(["frobnicate"])
        XCTAssertEqual(unknownCommand.status, 64)
        XCTAssertTrue(unknownCommand.stderr.contains("Unexpected argument 'frobnicate'"), "\(unknownCommand)")
        XCTAssertEqual(try ok("port", "show", "vm1", "--json").object["name"] as? String, "vm1")

        // No daemon: exit 69, naming the socket and the reason.
        let missing = try Switchctl(api: daemon.baseDirectory + "/none/api.sock").run(["ports"])
        XCTAssertEqual(missing.status, 69)
        XCTAssertEqual(missing.stderr, "vhost-switchctl: cannot connect to \(daemon.baseDirectory)/none/api.sock: No such file or directory\n")
        daemon.crash()  // kill -9: the socket file stays, nobody listens
        let stale = try ctl.run(["ports", "--json"])
        XCTAssertEqual(stale.status, 69, "\(stale)")
        XCTAssertEqual(stale.stderr, "vhost-switchctl: cannot connect to \(daemon.apiSocketPath): Connection refused\n")
    }

    /// --api http://HOST:PORT with --token-file, against a TCP listener with a token.
    func testTCPWithTokenFile() throws {
        let token = "switchctl-token-0123456789"
        try daemon.start(extraArguments: ["--pmd-threads", "1"], listenTCP: true, token: token)
        try daemon.waitUntilHealthy()
        let port = try XCTUnwrap(daemon.tcpPort)
        let tcp = Switchctl(api: "http://127.0.0.1:\(port)")
        let refused = try tcp.run(["ports"])
        XCTAssertEqual(refused.status, 1, "\(refused)")
        XCTAssertTrue(refused.stderr.contains("HTTP 401: unauthorized"), "\(refused)")
        let tokenFile = daemon.baseDirectory + "/ctl-token"
        try (token + "\n").write(toFile: tokenFile, atomically: true, encoding: .utf8)
        let listed = try tcp.run(["ports", "--json", "--token-file", tokenFile])
        XCTAssertEqual(listed.status, 0, "\(listed)")
        XCTAssertEqual((listed.object["ports"] as? [Any])?.count, 0)
        let missingToken = try tcp.run(["ports", "--token-file", daemon.baseDirectory + "/nope"])
        XCTAssertEqual(missingToken.status, 64)
        XCTAssertTrue(missingToken.stderr.contains("does not exist"), "\(missingToken)")
    }
}
