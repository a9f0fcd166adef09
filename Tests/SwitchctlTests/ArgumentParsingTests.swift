import ArgumentParser
import XCTest
@testable import ManagementClient
@testable import vhost_switchctl

/// The command line as ArgumentParser reads it, and the request bodies made from it.
final class ArgumentParsingTests: XCTestCase {
    func parse(_ arguments: [String]) throws -> any ParsableCommand {
        try VhostSwitchCtl.parseAsRoot(arguments)
    }

    func usageError(_ arguments: [String], file: StaticString = #filePath, line: UInt = #line) -> String {
        do {
            _ = try parse(arguments)
            XCTFail("\(arguments) parsed", file: file, line: line)
            return ""
        } catch {
            XCTAssertEqual(VhostSwitchCtl.exitCode(for: error).rawValue, 64, "\(arguments): \(error)", file: file, line: line)
            return VhostSwitchCtl.message(for: error)
        }
    }

    func testGlobalOptionsOnEveryCommand() throws {
        let commands: [[String]] = [["ports"], ["port", "show", "a"], ["port", "add", "a", "af-packet", "eth0"], ["port", "del", "a"],
                                    ["port", "set", "a", "vlan=1"], ["features", "a"], ["stats"], ["fdb"], ["events"], ["log-level"]]
        for command in commands {
            let parsed = try parse(command + ["--api", "http://127.0.0.1:9870", "--json", "--token-file", "/t"])
            let values = try XCTUnwrap(parsed as? any APICommand, "\(command)").options
            XCTAssertEqual(values.api, "http://127.0.0.1:9870")
            XCTAssertTrue(values.json)
            XCTAssertEqual(values.tokenFile, "/t")
        }
        let defaults = try XCTUnwrap(try parse(["ports"]) as? Ports)
        XCTAssertEqual(defaults.options.api, "/run/vhost-switch/api.sock")
        XCTAssertFalse(defaults.options.json)
    }

    func testSharedOptionsBeforeTheCommandMoveBehindIt() throws {
        XCTAssertEqual(VhostSwitchCtl.commandFirst(["--api", "/a.sock", "--json", "--token-file=/t", "port", "show", "vm1"]),
                       ["port", "show", "vm1", "--api", "/a.sock", "--json", "--token-file=/t"])
        XCTAssertEqual(VhostSwitchCtl.commandFirst(["ports", "--json"]), ["ports", "--json"])
        XCTAssertEqual(VhostSwitchCtl.commandFirst(["--api"]), ["--api"])
        let parsed = try XCTUnwrap(try parse(VhostSwitchCtl.commandFirst(["--api=/a.sock", "--json", "fdb", "--flush"])) as? FDB)
        XCTAssertEqual(parsed.options.api, "/a.sock")
        XCTAssertTrue(parsed.options.json && parsed.flush)
    }

    func testAPIEndpoints() throws {
        XCTAssertEqual(try APIOptions.endpoint("/run/x/api.sock"), .unix(path: "/run/x/api.sock"))
        XCTAssertEqual(try APIOptions.endpoint("api.sock"), .unix(path: "api.sock"))
        XCTAssertEqual(try APIOptions.endpoint("unix:///run/x/api.sock"), .unix(path: "/run/x/api.sock"))
        XCTAssertEqual(try APIOptions.endpoint("http://127.0.0.1:9870"), .tcp(host: "127.0.0.1", port: 9870, isIPv6: false))
        XCTAssertEqual(try APIOptions.endpoint("http://[::1]:9870"), .tcp(host: "::1", port: 9870, isIPv6: true))
        XCTAssertThrowsError(try APIOptions.endpoint("http://127.0.0.1"))
        XCTAssertThrowsError(try APIOptions.endpoint("ftp://x"))
        XCTAssertThrowsError(try APIOptions.endpoint("/" + String(repeating: "a", count: 107)))
    }

    func testPortAddBodies() throws {
        let vhost = try XCTUnwrap(try parse(["port", "add", "vm1", "vhost-user", "vm1.sock", "--mode", "client", "--queues", "2",
                                             "--mtu", "9000", "--mac", "02:00:00:00:00:01", "--vlan", "10", "--trunk", "20,30"]) as? PortCommand.Add)
        XCTAssertEqual(try vhost.body().rendered(),
                       #"{"name":"vm1","type":"vhost-user","socket":{"path":"vm1.sock","mode":"client"},"queues":2,"mtu":9000,"#
                       + #""mac":"02:00:00:00:00:01","vlan":10,"trunk":[20,30]}"#)
        let kernel = try XCTUnwrap(try parse(["port", "add", "up", "af-packet", "eth0", "--trunk", "10"]) as? PortCommand.Add)
        XCTAssertEqual(try kernel.body().rendered(), #"{"name":"up","type":"af-packet","interface":"eth0","trunk":[10]}"#)
        XCTAssertEqual(usageError(["port", "add", "up", "af-packet", "eth0", "--queues", "2"]),
                       "--mode, --mtu and --mac are for vhost-user ports, --queues for vhost-user and af-xdp ports")
        let xdp = try XCTUnwrap(try parse(["port", "add", "fast", "af-xdp", "eth1", "--queue", "2", "--queues", "4", "--xdp-mode", "native", "--vlan", "5"]) as? PortCommand.Add)
        XCTAssertEqual(try xdp.body().rendered(), #"{"name":"fast","type":"af-xdp","interface":"eth1","queue":2,"queues":4,"mode":"native","vlan":5}"#)
        XCTAssertEqual(usageError(["port", "add", "fast", "af-xdp", "eth1", "--mode", "client"]),
                       "--mode, --mtu and --mac are for vhost-user ports, --queues for vhost-user and af-xdp ports")
        XCTAssertEqual(usageError(["port", "add", "up", "af-packet", "eth0", "--xdp-mode", "native"]),
                       "--queue and --xdp-mode are for af-xdp ports")
        XCTAssertTrue(usageError(["port", "add", "fast", "af-xdp", "eth1", "--xdp-mode", "hw"]).contains("hw"))
        XCTAssertTrue(usageError(["port", "add", "x", "tap", "t0"]).contains("tap"))
        XCTAssertTrue(usageError(["port", "add", "x", "vhost-user", "x.sock", "--mode", "both"]).contains("both"))
        XCTAssertEqual(usageError(["port", "add", "x", "vhost-user", "x.sock", "--trunk", "a"]), #"--trunk: "a" is not a non-negative integer"#)
        XCTAssertTrue(usageError(["port", "add", "x"]).contains("Missing expected argument"))
    }

    func testPortSetAndDelete() throws {
        let set = try XCTUnwrap(try parse(["port", "set", "vm1", "vlan=10", "trunk=none"]) as? PortCommand.Change)
        XCTAssertEqual(try set.patch().rendered(), #"{"vlan":10,"trunk":null}"#)
        XCTAssertEqual(usageError(["port", "set", "vm1", "vlan:10"]), #""vlan:10" is not KEY=VALUE"#)
        XCTAssertTrue(usageError(["port", "set", "vm1"]).contains("Missing expected argument"))
        XCTAssertEqual(try XCTUnwrap(try parse(["port", "delete", "vm1"]) as? PortCommand.Delete).name, "vm1")
    }

    func testFeatureOffer() throws {
        let offer = try XCTUnwrap(try parse(["features", "vm1", "--offer", "+tso4,-mrg_rxbuf,guest_csum"]) as? Features)
        XCTAssertEqual(try offer.change()?.rendered(), #"{"enable":["tso4","guest_csum"],"disable":["mrg_rxbuf"]}"#)
        // A value starting with '-' is still the option's value.
        let disable = try XCTUnwrap(try parse(["features", "vm1", "--offer", "-mrg_rxbuf"]) as? Features)
        XCTAssertEqual(try disable.change()?.rendered(), #"{"enable":[],"disable":["mrg_rxbuf"]}"#)
        XCTAssertNil(try XCTUnwrap(try parse(["features", "vm1"]) as? Features).change())
        XCTAssertEqual(usageError(["features", "vm1", "--offer", "+a,-a"]), "--offer: a is both enabled and disabled")
        XCTAssertEqual(usageError(["features", "vm1", "--offer", "+"]), #"--offer: "+" is not +name, -name or name"#)
        XCTAssertEqual(usageError(["features", "vm1", "--offer", "a,,b"]), #"--offer: "" is not +name, -name or name"#)
        XCTAssertEqual(usageError(["features", "vm1", "--offer", "+-a"]), #"--offer: "+-a" is not +name, -name or name"#)
    }

    func testEventsQuery() throws {
        XCTAssertEqual(try XCTUnwrap(try parse(["events"]) as? Events).path, "/v1/events")
        let filtered = try XCTUnwrap(try parse(["events", "--follow", "--port", "vm 1", "--type", "device.*,port.created"]) as? Events)
        XCTAssertEqual(filtered.path, "/v1/events?since=0&port=vm%201&type=device.%2A%2Cport.created")
    }

    func testUnknownCommandIsAUsageError() {
        XCTAssertFalse(usageError(["frobnicate"]).isEmpty)
    }
}

/// The pieces of output and transport that need no daemon.
final class OutputTests: XCTestCase {
    func testTableColumnsLineUp() {
        var table = TextTable(["NAME", "TYPE"])
        table.add(["vm1", "vhost-user"])
        table.add(["uplink-long", "af-packet"])
        XCTAssertEqual(table.rendered(), "NAME         TYPE\nvm1          vhost-user\nuplink-long  af-packet\n")
    }

    func testFieldsFlattenNestedObjects() throws {
        let port = try JSONValue.parse(#"{"name":"vm1","socket":{"path":"a.sock","owner":null},"trunk":[10,20],"rate_limit":{"pps":5}}"#)
        XCTAssertEqual(TextTable.flattened(port).map { "\($0.0)=\($0.1)" },
                       ["name=vm1", "rate_limit.pps=5", "socket.owner=-", "socket.path=a.sock", "trunk=10,20"])
    }

    func testServerSentEventsSplitAcrossReads() {
        var reader = ServerSentEventReader()
        XCTAssertEqual(reader.feed(Array("retry: 2000\n: comment\n\nid: 1\nevent: port.created\nda".utf8)), [])
        XCTAssertEqual(reader.feed(Array("ta: {\"id\":1}\n\nid: 2\r\ndata: {\"id\":2}\r\n\r\n: keepalive\n\n".utf8)), [#"{"id":1}"#, #"{"id":2}"#])
        XCTAssertEqual(reader.feed(Array("data: a\ndata: b\n\n".utf8)), ["a\nb"])
    }

    func testStatsPlacementSharesAThreadsPackets() throws {
        let stats = try JSONValue.parse("""
            {"ports":[{"name":"vm1","state":"ready","switch":{"rx_packets":30,"drops":{"a":1,"b":2}},
                       "vrings":[{"index":1,"counters":{"packets":30,"bytes":1000,"drops_no_buffers":4}}]},
                      {"name":"up","kernel":{"interface_up":true},"switch":{"rx_packets":10,"drops":{}}}],
             "poll_threads":[{"index":0,"busy_ratio":0.25,"busy_cycles_per_packet":151.6,"max_burst_ns":12345,
                              "queues":[{"port":"vm1","vring":1},{"port":"up","vring":0}]},{"index":1,"queues":[]}],
             "fdb":{"entries":2,"capacity":8192},"events":{"published":5,"subscribers":1}}
            """)
        let report = StatsReport.render(stats)
        XCTAssertTrue(report.contains("vm1   ready  30"), report)
        XCTAssertTrue(report.contains("up    up"), report)
        XCTAssertTrue(report.contains("vm1   1      0    30       1000   4"), report)
        XCTAssertTrue(report.contains("0    -           -        25.0%  152"), report)
        XCTAssertTrue(report.contains("  vm1   1      30          75.0%"), report)
        XCTAssertTrue(report.contains("  up    0      10          25.0%"), report)
        XCTAssertTrue(report.contains("pmd thread 1:\n  (no queues)"), report)
        XCTAssertTrue(report.contains("fdb: 2 of 8192 entries; events: 5 published, 1 subscribers"), report)
    }

    func testChunkedBodiesArriveInPieces() {
        var decoder = ChunkedDecoder(isChunked: true)
        XCTAssertEqual(decoder.feed(Array("5\r\nhel".utf8)), [])
        XCTAssertEqual(decoder.feed(Array("lo\r\n3;x=y\r\n wo\r\n".utf8)), Array("hello wo".utf8))
        XCTAssertFalse(decoder.finished)
        XCTAssertEqual(decoder.feed(Array("0\r\n\r\n".utf8)), [])
        XCTAssertTrue(decoder.finished)
        XCTAssertEqual(APIClient.decodeChunked(Array("2\r\nab\r\n0\r\n\r\n".utf8)), Array("ab".utf8))
        XCTAssertNil(APIClient.decodeChunked(Array("2\r\nab\r\n".utf8)))
    }

    /// A hostile or broken server's chunk sizes (a sign, a size past Int, past the cap, no
    /// CRLF after the data) end the body as malformed, and a Content-Length that is not
    /// digits is refused; nothing traps.
    func testMalformedChunkSizesAreRefusedWithoutTrapping() {
        for body in ["-1\r\nab\r\n0\r\n\r\n", "+2\r\nab\r\n0\r\n\r\n", "7fffffffffffffff\r\nab\r\n", "ffffffffffffffffff\r\nab\r\n",
                     "2000000\r\nab\r\n", "\r\nab\r\n", "0x2\r\nab\r\n", "2\r\nabXY0\r\n\r\n"] {
            var decoder = ChunkedDecoder(isChunked: true)
            XCTAssertEqual(decoder.feed(Array(body.utf8)), [], body)
            XCTAssertTrue(decoder.malformed, body)
            XCTAssertFalse(decoder.finished, body)
            XCTAssertEqual(decoder.feed(Array("2\r\nab\r\n0\r\n\r\n".utf8)), [], "nothing is decoded after a malformed chunk: \(body)")
            XCTAssertNil(APIClient.decodeChunked(Array(body.utf8)), body)
        }
        for length in ["-1", "+2", "99999999999999999999", ""] {
            XCTAssertNil(APIClient.parse(Array("HTTP/1.1 200 OK\r\nContent-Length: \(length)\r\n\r\nab".utf8), complete: true), length)
        }
        XCTAssertEqual(APIClient.parse(Array("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nab".utf8), complete: true)?.body, Array("ab".utf8))
    }

    func testEscapedPathSegments() {
        XCTAssertEqual(APISession.escaped("vm-1_a.b~"), "vm-1_a.b~")
        XCTAssertEqual(APISession.escaped("a/b c?d"), "a%2Fb%20c%3Fd")
        XCTAssertEqual(APISession.portPath("../x", "/features"), "/v1/ports/..%2Fx/features")
    }
}
