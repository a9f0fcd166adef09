import Foundation
import TestSupport
import XCTest

/// Every route and every error status over the daemon's real unix socket (and TCP), with curl.
final class ManagementAPIIntegrationTests: XCTestCase {
    var daemon: SwitchDaemonProcess!
    var api: SwitchAPIClient { daemon.api }

    override func setUpWithError() throws {
        daemon = try SwitchDaemonProcess.forAPITests()
        try daemon.startForAPITests()
    }

    override func tearDown() {
        if let daemon, !daemon.isRunning, daemon.process != nil {
            XCTFail("vhost-switchd exited during the test:\n\(daemon.output)")
        }
        daemon = nil
    }

    func vhostPort(_ name: String, path: String? = nil, mode: String = "server", extra: [String: Any] = [:]) -> [String: Any] {
        var object: [String: Any] = ["name": name, "type": "vhost-user", "socket": ["path": path ?? "\(name).sock", "mode": mode]]
        for (key, value) in extra { object[key] = value }
        return object
    }

    // MARK: Service

    func testHealthAndVersion() throws {
        let health = try api.request("GET", "/v1/health")
        XCTAssertEqual(health.status, 200)
        XCTAssertEqual(health.object["status"] as? String, "ok")
        XCTAssertEqual(health.headers["content-type"], "application/json")
        let version = try api.request("GET", "/v1/version")
        XCTAssertEqual(version.status, 200)
        XCTAssertEqual(version.object["api"] as? String, "v1")
        XCTAssertNotNil(version.object["libmicrohttpd"] as? String)
    }

    func testAPISocketIsMode0660() throws {
        let attributes = try FileManager.default.attributesOfItem(atPath: daemon.apiSocketPath)
        XCTAssertEqual((attributes[.posixPermissions] as? NSNumber)?.intValue, 0o660)
    }

    func testUnknownRouteIs404AndWrongMethodIs405WithAllow() throws {
        let missing = try api.request("GET", "/v1/nothing")
        XCTAssertEqual(missing.status, 404)
        XCTAssertEqual(missing.errorCode, "not_found")
        XCTAssertEqual(try api.request("GET", "/").status, 404)
        XCTAssertEqual(try api.request("GET", "/v1/ports/a/b/c/d").status, 404)
        let wrong = try api.request("PUT", "/v1/health", body: "{}")
        XCTAssertEqual(wrong.status, 405)
        XCTAssertEqual(wrong.headers["allow"], "GET, HEAD")
        XCTAssertEqual(wrong.errorCode, "method_not_allowed")
        let ports = try api.request("PATCH", "/v1/ports", body: "{}")
        XCTAssertEqual(ports.status, 405)
        XCTAssertEqual(ports.headers["allow"], "GET, HEAD, POST")
        let features = try api.request("POST", "/v1/ports/x/features", body: "{}")
        XCTAssertEqual(features.headers["allow"], "GET, HEAD, PATCH, PUT")
    }

    // MARK: Ports

    func testCreateGetListDeletePort() throws {
        let created = try api.json("POST", "/v1/ports", vhostPort("vm1", extra: ["queues": 2, "mtu": 9000, "mac": "02:00:00:00:00:01"]))
        XCTAssertEqual(created.status, 201, created.body)
        XCTAssertEqual(created.headers["location"], "/v1/ports/vm1")
        XCTAssertEqual(created.object["name"] as? String, "vm1")
        XCTAssertEqual(created.object["queues"] as? Int, 2)
        XCTAssertEqual(created.object["state"] as? String, "listening")
        let socketPath = daemon.socketPath("vm1.sock")
        XCTAssertEqual((created.object["socket"] as? [String: Any])?["absolute_path"] as? String, socketPath)
        XCTAssertTrue(FileManager.default.fileExists(atPath: socketPath))

        let fetched = try api.request("GET", "/v1/ports/vm1")
        XCTAssertEqual(fetched.status, 200)
        XCTAssertEqual(fetched.object["mtu"] as? Int, 9000)
        let list = try api.request("GET", "/v1/ports")
        XCTAssertEqual((list.object["ports"] as? [[String: Any]])?.compactMap { $0["name"] as? String }, ["vm1"])

        let deleted = try api.request("DELETE", "/v1/ports/vm1")
        XCTAssertEqual(deleted.status, 204)
        XCTAssertEqual(deleted.body, "")
        XCTAssertFalse(FileManager.default.fileExists(atPath: socketPath), "the server socket file is removed")
        XCTAssertEqual(try api.request("GET", "/v1/ports/vm1").status, 404)
        let again = try api.request("DELETE", "/v1/ports/vm1")
        XCTAssertEqual(again.status, 404)
        XCTAssertEqual(again.errorCode, "port_not_found")
    }

    func testClientModePortAndSubdirectory() throws {
        let created = try api.json("POST", "/v1/ports", vhostPort("pod-a", path: "pod-a/net0.sock", mode: "client"))
        XCTAssertEqual(created.status, 201, created.body)
        XCTAssertEqual(created.object["state"] as? String, "connecting")
    }

    func testDuplicateNameOrSocketIs409() throws {
        XCTAssertEqual(try api.json("POST", "/v1/ports", vhostPort("a")).status, 201)
        let sameName = try api.json("POST", "/v1/ports", vhostPort("a", path: "other.sock"))
        XCTAssertEqual(sameName.status, 409)
        XCTAssertEqual(sameName.errorCode, "port_exists")
        let sameSocket = try api.json("POST", "/v1/ports", vhostPort("b", path: "a.sock"))
        XCTAssertEqual(sameSocket.status, 409)
        XCTAssertTrue(sameSocket.errorMessage.contains("socket"), sameSocket.errorMessage)
        // The failed creates left nothing behind.
        XCTAssertEqual((try api.request("GET", "/v1/ports").object["ports"] as? [Any])?.count, 1)
    }

    func testBadPortBodiesAre400WithPreciseMessages() throws {
        let cases: [(String, String)] = [
            (#"{"name":"x","type":"vhost-user","socket":{"path":"x.sock"},"colour":"red"}"#, "unknown field \"colour\""),
            (#"{"name":"x","type":"vhost-user","socket":{"path":"x.sock","bogus":1}}"#, "unknown field \"bogus\" in socket"),
            (#"{"name":"x","name":"y","type":"vhost-user","socket":{"path":"x.sock"}}"#, "duplicate"),
            (#"{"name":"x","type":"vhost-user","socket":{"path":"x.sock"},"queues":"2"}"#, "queues must be an integer"),
            (#"{"name":"x","type":"vhost-user","socket":{"path":"x.sock"},"queues":129}"#, "queues must be an integer from 1 to"),
            (#"{"name":"x","type":"vhost-user","socket":{"path":"x.sock"},"mtu":20}"#, "mtu must be"),
            (#"{"name":"x","type":"vhost-user","socket":{"path":"x.sock"},"mac":"nope"}"#, "mac must look like"),
            (#"{"name":"x","type":"vhost-user","socket":{"path":"x.sock","mode":"both"}}"#, "socket.mode"),
            (#"{"name":"x","type":"vhost-user","socket":{"path":"x.sock"},"features":{"enable":["warp_drive"]}}"#, "unknown feature"),
            (#"{"name":"x","type":"vhost-user","socket":{"path":"x.sock"},"features":{"enable":["ctrl_rx"]}}"#, "not supported"),
            (#"{"name":"x","type":"teleport"}"#, "type must be"),
            (#"{"type":"vhost-user","socket":{"path":"x.sock"}}"#, "name is required"),
            (#"{"name":"x","type":"vhost-user"}"#, "socket is required"),
            (#"[1,2,3]"#, "must be a JSON object"),
            (#"{"name":"x","type":"vhost-user","socket":{"path":"x.sock"}"#, "invalid JSON"),
            (#"{"name": 5, "type":"vhost-user","socket":{"path":"x.sock"}}"#, "name must be a string"),
            (String(repeating: "[", count: 64) + String(repeating: "]", count: 64), "nested deeper"),
            (#"{"a":"# + String(repeating: #"{"a":"#, count: 30) + "1" + String(repeating: "}", count: 31), "nested deeper"),
        ]
        for (body, expected) in cases {
            let response = try api.request("POST", "/v1/ports", body: body)
            XCTAssertEqual(response.status, 400, "\(body) -> \(response.body)")
            XCTAssertTrue(response.errorMessage.contains(expected), "\(body): expected \"\(expected)\" in \(response.errorMessage)")
            XCTAssertNotNil(response.errorCode)
        }
        XCTAssertEqual((try api.request("GET", "/v1/ports").object["ports"] as? [Any])?.count, 0, "nothing half-made remains")
    }

    func testBadNamesAre400() throws {
        let names = ["a/b", "bad\u{1}name", "tab\tname", String(repeating: "n", count: 65), "", "..", ".hidden", "-x", "sp ace", "ünï"]
        for name in names {
            let response = try api.json("POST", "/v1/ports", vhostPort(name, path: "ok-\(abs(name.hashValue)).sock"))
            XCTAssertEqual(response.status, 400, "name \(name.debugDescription): \(response.body)")
            XCTAssertEqual(response.errorCode, "invalid_port")
        }
        XCTAssertEqual(try api.json("POST", "/v1/ports", vhostPort(String(repeating: "n", count: 64), path: "long.sock")).status, 201)
    }

    func testSocketPathsCannotEscapeTheSocketDirectory() throws {
        let outside = URL(fileURLWithPath: daemon.baseDirectory).appendingPathComponent("outside")
        try FileManager.default.createDirectory(at: outside, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: daemon.socketDirectory, withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(at: URL(fileURLWithPath: daemon.socketPath("link")), withDestinationURL: outside)
        let paths = [
            "../escape.sock", "a/../../escape.sock", "./x.sock", "/etc/vhost.sock", "/tmp/x.sock",
            daemon.socketDirectory + "/../x.sock", "link/x.sock", "bad\nname.sock", "",
            String(repeating: "p", count: 120) + ".sock",
        ]
        for (index, path) in paths.enumerated() {
            let response = try api.json("POST", "/v1/ports", vhostPort("p\(index)", path: path))
            XCTAssertEqual(response.status, 400, "path \(path.debugDescription): \(response.body)")
        }
        XCTAssertTrue(try FileManager.default.contentsOfDirectory(atPath: outside.path).isEmpty, "nothing was created through the symlink")
        // An absolute path inside the directory is fine.
        let inside = try api.json("POST", "/v1/ports", vhostPort("abs", path: daemon.socketDirectory + "/abs.sock"))
        XCTAssertEqual(inside.status, 201, inside.body)
    }

    // MARK: Body rules

    func testOversizedBodiesAre413() throws {
        let big = #"{"name":"x","pad":""# + String(repeating: "a", count: 70 * 1024) + #""}"#
        let response = try api.request("POST", "/v1/ports", body: big)
        XCTAssertEqual(response.status, 413)
        XCTAssertEqual(response.errorCode, "body_too_large")
        // Chunked (no Content-Length): counted while streaming in.
        let chunked = try api.request("POST", "/v1/ports", body: big, headers: ["Transfer-Encoding: chunked"])
        XCTAssertEqual(chunked.status, 413)
        XCTAssertEqual(try api.request("GET", "/v1/health").status, 200)
    }

    func testNonJSONBodiesAre415() throws {
        XCTAssertEqual(try api.json("POST", "/v1/ports", vhostPort("x")).status, 201)
        for type in ["text/plain", "application/x-www-form-urlencoded", "application/jsonx", "multipart/form-data"] {
            let response = try api.request("POST", "/v1/ports", body: #"{"name":"y"}"#, contentType: type)
            XCTAssertEqual(response.status, 415, type)
            XCTAssertEqual(response.errorCode, "unsupported_media_type")
        }
        let charset = try api.request("PUT", "/v1/ports/x/features", body: #"{"mask":"0x100000000"}"#,
                                         contentType: "application/json; charset=utf-8")
        XCTAssertEqual(charset.status, 200, charset.body)
        let missing = try api.request("POST", "/v1/ports", body: "{}", contentType: nil, headers: ["Content-Type:"])
        XCTAssertEqual(missing.status, 415)
        let empty = try api.request("POST", "/v1/ports")
        XCTAssertEqual(empty.status, 400)
        XCTAssertEqual(empty.errorCode, "invalid_body")
    }

    // MARK: Features

    func testFeaturesGetPutPatch() throws {
        XCTAssertEqual(try api.json("POST", "/v1/ports", vhostPort("f")).status, 201)
        let features = try api.request("GET", "/v1/ports/f/features")
        XCTAssertEqual(features.status, 200)
        let supported = features.object["supported"] as? [String: Any]
        XCTAssertNotNil(supported?["mask"] as? String)
        XCTAssertTrue((supported?["names"] as? [String])?.contains("mrg_rxbuf") ?? false)
        XCTAssertTrue(features.object["negotiated"] is NSNull, "negotiated is null until a session negotiated")
        XCTAssertNotNil((features.object["protocol"] as? [String: Any])?["offered"] as? [String: Any])

        let put = try api.request("PUT", "/v1/ports/f/features", body: #"{"mask":"0x100000000"}"#)
        XCTAssertEqual(put.status, 200, put.body)
        XCTAssertEqual((put.object["offered"] as? [String: Any])?["names"] as? [String], ["version_1"])
        XCTAssertEqual(put.object["applies"] as? String, "now")

        let patch = try api.request("PATCH", "/v1/ports/f/features", body: #"{"enable":["mrg_rxbuf","event_idx"],"disable":["version_1"]}"#)
        XCTAssertEqual(patch.status, 200, patch.body)
        XCTAssertEqual((patch.object["offered"] as? [String: Any])?["names"] as? [String], ["mrg_rxbuf", "event_idx"])
        XCTAssertEqual((patch.object["offered"] as? [String: Any])?["mask"] as? String, "0x20008000")

        for (method, body, code) in [
            ("PUT", #"{"mask":"0x40000"}"#, "unsupported_features"),  // ctrl_rx: outside supported
            ("PUT", #"{"mask":"0xffffffffffffffff"}"#, "unsupported_features"),
            ("PUT", #"{"mask":"zz"}"#, "invalid_mask"),
            ("PUT", #"{"mask":"0x1ffffffffffffffff"}"#, "invalid_mask"),
            ("PUT", #"{"mask":"0x0","extra":1}"#, "unknown_field"),
            ("PUT", #"{}"#, "invalid_body"),
            ("PATCH", #"{"enable":["ctrl_rx"]}"#, "unsupported_features"),
            ("PATCH", #"{"enable":["ctrl_rx"],"disable":["ctrl_rx"]}"#, "unsupported_features"),  // enable: supported names only
            ("PATCH", #"{"enable":["no_such_feature"]}"#, "unknown_feature"),
            ("PATCH", #"{"enable":"mq"}"#, "invalid_body"),
            ("PATCH", #"{"turn_on":["mq"]}"#, "unknown_field"),
        ] {
            let response = try api.request(method, "/v1/ports/f/features", body: body)
            XCTAssertEqual(response.status, 400, "\(method) \(body): \(response.body)")
            XCTAssertEqual(response.errorCode, code, "\(method) \(body)")
        }
        // Refused changes changed nothing.
        let after = try api.request("GET", "/v1/ports/f/features")
        XCTAssertEqual((after.object["offered"] as? [String: Any])?["mask"] as? String, "0x20008000")
        XCTAssertEqual(try api.request("GET", "/v1/ports/nope/features").status, 404)
    }

    // MARK: Device, vrings, stats

    func testDeviceAndVrings() throws {
        XCTAssertEqual(try api.json("POST", "/v1/ports", vhostPort("d", extra: ["queues": 2])).status, 201)
        let device = try api.request("GET", "/v1/ports/d/device")
        XCTAssertEqual(device.status, 200)
        XCTAssertEqual(device.object["state"] as? String, "listening")
        XCTAssertEqual(device.object["max_queue_pairs"] as? Int, 2)
        XCTAssertEqual((device.object["memory_regions"] as? [Any])?.count, 0)
        XCTAssertEqual(device.object["dirty_logging"] as? Bool, false)
        let vrings = try api.request("GET", "/v1/ports/d/vrings")
        XCTAssertEqual(vrings.status, 200)
        XCTAssertNotNil(vrings.object["vrings"] as? [Any])
        XCTAssertEqual(try api.request("GET", "/v1/ports/d/vrings/0").status, 404, "no rings without a front-end")
        for bad in ["abc", "-1", "1e3", "99999999999"] {
            let response = try api.request("GET", "/v1/ports/d/vrings/\(bad)")
            XCTAssertEqual(response.status, 400, bad)
            XCTAssertEqual(response.errorCode, "invalid_vring_index")
        }
        XCTAssertEqual(try api.request("GET", "/v1/ports/missing/device").status, 404)
        XCTAssertEqual(try api.request("GET", "/v1/ports/missing/vrings").status, 404)
        // The most queue pairs a port takes (issue 21): the device offers them all.
        XCTAssertEqual(try api.json("POST", "/v1/ports", vhostPort("m", extra: ["queues": 128])).status, 201)
        XCTAssertEqual(try api.request("GET", "/v1/ports/m/device").object["max_queue_pairs"] as? Int, 128)
        XCTAssertEqual(try api.request("GET", "/v1/ports/m").object["queues"] as? Int, 128)
    }

    func testStatsAndFDB() throws {
        XCTAssertEqual(try api.json("POST", "/v1/ports", vhostPort("s")).status, 201)
        let portStats = try api.request("GET", "/v1/ports/s/stats")
        XCTAssertEqual(portStats.status, 200)
        XCTAssertEqual((portStats.object["rx"] as? [String: Any])?["packets"] as? Int, 0)
        XCTAssertEqual(try api.request("GET", "/v1/ports/zzz/stats").status, 404)
        let stats = try api.request("GET", "/v1/stats")
        XCTAssertEqual(stats.status, 200)
        let threads = stats.object["poll_threads"] as? [[String: Any]]
        XCTAssertEqual(threads?.count, 1)
        for key in ["iterations", "busy_cycles", "idle_cycles", "packets", "busy_cycles_per_packet"] {
            XCTAssertNotNil(threads?.first?[key], key)
        }
        XCTAssertEqual((stats.object["ports"] as? [Any])?.count, 1)

        let fdb = try api.request("GET", "/v1/fdb")
        XCTAssertEqual(fdb.status, 200)
        XCTAssertNotNil(fdb.object["entries"] as? [Any])
        let flush = try api.request("DELETE", "/v1/fdb")
        XCTAssertEqual(flush.status, 200)
        XCTAssertEqual(flush.object["removed"] as? Int, 0)
        let absent = try api.request("DELETE", "/v1/fdb/02:00:00:00:00:09")
        XCTAssertEqual(absent.status, 404)
        XCTAssertEqual(absent.errorCode, "mac_not_found")
        for bad in ["zz", "02:00:00:00:00", "02-00-00-00-00-01", "02:00:00:00:00:001"] {
            let response = try api.request("DELETE", "/v1/fdb/\(bad)")
            XCTAssertEqual(response.status, 400, bad)
            XCTAssertEqual(response.errorCode, "invalid_mac")
        }
    }

    // MARK: Events

    func testEventStreamDeliversEventsAsTheyHappen() throws {
        let reader = try api.eventStream("/v1/events")
        XCTAssertTrue(reader.waitFor("retry:"), "the stream opens at once: \(reader.text)")
        XCTAssertEqual(try api.json("POST", "/v1/ports", vhostPort("e1")).status, 201)
        XCTAssertTrue(reader.waitFor("event: port.created"), reader.text)
        XCTAssertTrue(reader.text.contains(#""port":"e1""#))
        XCTAssertEqual(try api.request("DELETE", "/v1/ports/e1").status, 204)
        XCTAssertTrue(reader.waitFor("event: port.deleted"), reader.text)
        let ids = reader.ids
        XCTAssertEqual(ids.count, 2)
        XCTAssertEqual(ids, ids.sorted())
        XCTAssertEqual(Set(ids).count, ids.count)
        reader.stop()
    }

    func testEventReplayFiltersAndJSONHistory() throws {
        XCTAssertEqual(try api.json("POST", "/v1/ports", vhostPort("r1")).status, 201)
        XCTAssertEqual(try api.json("POST", "/v1/ports", vhostPort("r2")).status, 201)
        XCTAssertEqual(try api.request("DELETE", "/v1/ports/r1").status, 204)

        let history = try api.request("GET", "/v1/events", headers: ["Accept: application/json"])
        XCTAssertEqual(history.status, 200)
        let events = history.json as? [[String: Any]] ?? []
        XCTAssertEqual(events.compactMap { $0["type"] as? String }, ["port.created", "port.created", "port.deleted"])
        XCTAssertEqual(events.compactMap { $0["id"] as? Int }, [1, 2, 3])
        for event in events {
            XCTAssertNotNil(event["time"] as? String)
            XCTAssertNotNil(event["data"] as? [String: Any])
        }
        let since = try api.request("GET", "/v1/events?since=1", headers: ["Accept: application/json"])
        XCTAssertEqual((since.json as? [[String: Any]])?.compactMap { $0["id"] as? Int }, [2, 3])
        let byType = try api.request("GET", "/v1/events?type=port.deleted", headers: ["Accept: application/json"])
        XCTAssertEqual((byType.json as? [[String: Any]])?.compactMap { $0["port"] as? String }, ["r1"])
        let byPort = try api.request("GET", "/v1/events?port=r2", headers: ["Accept: application/json"])
        XCTAssertEqual((byPort.json as? [[String: Any]])?.compactMap { $0["id"] as? Int }, [2])
        let family = try api.request("GET", "/v1/events?type=port", headers: ["Accept: application/json"])
        XCTAssertEqual((family.json as? [Any])?.count, 3)

        // Last-Event-ID replays over SSE, then live events follow.
        let reader = try api.eventStream("/v1/events", headers: ["Last-Event-ID: 1"])
        XCTAssertTrue(reader.waitFor("id: 3"), reader.text)
        XCTAssertFalse(reader.text.contains("id: 1\n"))
        XCTAssertEqual(try api.request("DELETE", "/v1/ports/r2").status, 204)
        XCTAssertTrue(reader.waitFor("id: 4"), reader.text)
        XCTAssertEqual(reader.ids, [2, 3, 4])
        reader.stop()

        let filtered = try api.eventStream("/v1/events?since=0&type=port.created&port=r1")
        XCTAssertTrue(filtered.waitFor("id: 1"), filtered.text)
        Thread.sleep(forTimeInterval: 0.2)
        XCTAssertEqual(filtered.ids, [1])
        filtered.stop()

        for bad in ["/v1/events?since=-1", "/v1/events?since=abc", "/v1/events?type=port.exploded", "/v1/events?type="] {
            let response = try api.request("GET", bad, headers: ["Accept: application/json"])
            XCTAssertEqual(response.status, 400, bad)
        }
        XCTAssertEqual(try api.request("GET", "/v1/events", headers: ["Accept: application/json", "Last-Event-ID: x"]).status, 400)
    }

    // MARK: Metrics

    func testMetricsPassPromtool() throws {
        XCTAssertEqual(try api.json("POST", "/v1/ports", vhostPort("m1")).status, 201)
        let metrics = try api.request("GET", "/metrics")
        XCTAssertEqual(metrics.status, 200)
        XCTAssertTrue(metrics.headers["content-type"]?.hasPrefix("text/plain") ?? false)
        XCTAssertTrue(metrics.body.contains(#"vhost_switch_port_packets_total{port="m1",direction="rx"} 0"#), metrics.body)
        XCTAssertTrue(metrics.body.contains(#"vhost_switch_pmd_iterations_total{thread="0"}"#))
        XCTAssertTrue(metrics.body.contains(#"vhost_switch_events_total{type="port.created"} 1"#))
        // Every series the Grafana dashboard in deploy/ queries is a family /metrics declares.
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let dashboard = try String(contentsOf: root.appendingPathComponent("deploy/grafana/vhost-switch.json"), encoding: .utf8)
        let names = try NSRegularExpression(pattern: "\\b(vhost_switch_[a-z_]+|process_[a-z_]+)\\b")
        let queried = Set(names.matches(in: dashboard, range: NSRange(dashboard.startIndex..., in: dashboard)).compactMap {
            Range($0.range, in: dashboard).map { String(dashboard[$0]) }
        })
        XCTAssertGreaterThan(queried.count, 10)
        for name in queried.sorted() {
            XCTAssertTrue(metrics.body.contains("# TYPE \(name) "), "the dashboard queries \(name), which /metrics does not declare")
        }
        guard let promtool = ["/usr/bin/promtool", "/usr/local/bin/promtool"].first(where: FileManager.default.isExecutableFile(atPath:)) else {
            print("promtool not installed (apt-get install prometheus): metrics format checked by the assertions above only")
            return
        }
        let (status, output, errors) = try Self.run(promtool, ["check", "metrics"], stdin: Data(metrics.body.utf8))
        XCTAssertEqual(status, 0, "promtool check metrics: \(output) \(errors)")
    }

    // MARK: Robustness

    func testCreateAndDelete1000PortsLeaksNoFdsOrMemory() throws {
        // Warm up: first allocations (pools, caches) are not leaks.
        for i in 0..<20 {
            XCTAssertEqual(try api.json("POST", "/v1/ports", vhostPort("w\(i)")).status, 201)
            XCTAssertEqual(try api.request("DELETE", "/v1/ports/w\(i)").status, 204)
        }
        let fdsBefore = daemon.openFileCount()
        let rssBefore = daemon.residentKiB()
        for i in 0..<1000 {
            let created = try api.json("POST", "/v1/ports", vhostPort("loop", path: "loop\(i % 7).sock", mode: i % 2 == 0 ? "server" : "client"))
            XCTAssertEqual(created.status, 201, created.body)
            XCTAssertEqual(try api.request("DELETE", "/v1/ports/loop").status, 204)
        }
        let fdsAfter = daemon.openFileCount()
        let rssAfter = daemon.residentKiB()
        XCTAssertLessThanOrEqual(fdsAfter, fdsBefore + 2, "fds: \(fdsBefore) -> \(fdsAfter)")
        XCTAssertLessThan(rssAfter - rssBefore, 8 * 1024, "RSS grew from \(rssBefore) KiB to \(rssAfter) KiB")
    }

    func testGarbageRequestsDoNotHurtTheDaemon() throws {
        for body in ["\u{0}\u{1}\u{2}", "{", "null", "\"str\"", "1e999999", #"{"name":"\ud800"}"#, String(repeating: "{\"a\":", count: 5000)] {
            let response = try api.request("POST", "/v1/ports", body: body)
            XCTAssertEqual(response.status, 400, body.prefix(40).debugDescription + " -> " + response.body)
        }
        XCTAssertEqual(try api.request("GET", "/v1/health").status, 200)
    }

    /// Runs a tool (promtool) with `stdin`; its exit status, stdout and stderr.
    static func run(_ executable: String, _ arguments: [String], stdin: Data) throws -> (Int32, String, String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let out = Pipe(), err = Pipe(), input = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = input
        try process.run()
        input.fileHandleForWriting.write(stdin)
        try? input.fileHandleForWriting.close()
        let output = out.fileHandleForReading.readDataToEndOfFile()
        let errors = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: output, as: UTF8.self), String(decoding: errors, as: UTF8.self))
    }
}
