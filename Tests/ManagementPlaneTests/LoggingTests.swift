import Foundation
import Logging
import TestSupport
import XCTest
@testable import ManagementPlane

/// --log-format json, and the log level read and changed at run time (GET/PUT /v1/log-level).
final class LogLineHandlerTests: XCTestCase {
    func testJSONLineHasTheFiveFields() throws {
        let line = LogLineHandler.jsonLine(time: 1_700_000_000_123, level: .warning, label: "vhost-switchd", message: "a \"quoted\"\nline",
                                           metadata: ["port": "vm1", "count": .stringConvertible(3), "list": ["a", "b"], "nested": ["k": "v"]])
        XCTAssertTrue(line.hasSuffix("}\n"))
        XCTAssertEqual(line.filter { $0 == "\n" }.count, 1, "one line: \(line)")
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        XCTAssertEqual(object["time"] as? String, "2023-11-14T22:13:20.123Z")
        XCTAssertEqual(object["level"] as? String, "warning")
        XCTAssertEqual(object["label"] as? String, "vhost-switchd")
        XCTAssertEqual(object["message"] as? String, "a \"quoted\"\nline")
        let metadata = try XCTUnwrap(object["metadata"] as? [String: Any])
        XCTAssertEqual(metadata["port"] as? String, "vm1")
        XCTAssertEqual(metadata["count"] as? String, "3")
        XCTAssertEqual(metadata["list"] as? [String], ["a", "b"])
        XCTAssertEqual(metadata["nested"] as? [String: String], ["k": "v"])
    }

    func testEveryHandlerFollowsTheSharedLevel() {
        let level = RuntimeLogLevel(.info)
        var first = LogLineHandler(label: "a", format: .json, level: level)
        let second = LogLineHandler(label: "b", format: .text, level: level)
        XCTAssertEqual(first.logLevel, .info)
        level.level = .debug
        XCTAssertEqual(first.logLevel, .debug)
        XCTAssertEqual(second.logLevel, .debug)
        first.logLevel = .error
        XCTAssertEqual(second.logLevel, .error)
        XCTAssertEqual(level.level, .error)
        XCTAssertEqual(RuntimeLogLevel.names, ["trace", "debug", "info", "notice", "warning", "error", "critical"])
    }
}

final class RuntimeLogLevelAPITests: XCTestCase {
    func testJSONLogsAndTheLevelChangedThroughTheAPI() throws {
        let daemon = try SwitchDaemonProcess.forAPITests()
        try daemon.start(extraArguments: ["--pmd-threads", "1", "--log-format", "json"])
        try daemon.waitUntilHealthy()
        defer { daemon.stop() }
        XCTAssertEqual(try daemon.api.request("GET", "/v1/log-level").object["level"] as? String, "info")

        // Quieter: the port service's info lines stop.
        let quiet = try daemon.api.request("PUT", "/v1/log-level", body: #"{"level": "warning"}"#)
        XCTAssertEqual(quiet.status, 200, quiet.body)
        XCTAssertEqual(quiet.object["level"] as? String, "warning")
        XCTAssertEqual(try daemon.api.expect("POST", "/v1/ports", body: #"{"name":"quiet","type":"vhost-user","socket":{"path":"q.sock"}}"#).status, 201)
        // Louder again: they are back, and the change itself is a notice.
        XCTAssertEqual(try daemon.api.request("PUT", "/v1/log-level", body: #"{"level": "debug"}"#).status, 200)
        XCTAssertEqual(try daemon.api.request("GET", "/v1/log-level").object["level"] as? String, "debug")
        XCTAssertEqual(try daemon.api.expect("POST", "/v1/ports", body: #"{"name":"loud","type":"vhost-user","socket":{"path":"l.sock"}}"#).status, 201)
        try daemon.waitForLog(#""port":"loud""#)

        let lines = daemon.output.split(separator: "\n")
        XCTAssertGreaterThan(lines.count, 3)
        var objects: [[String: Any]] = []
        for line in lines {
            let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], "not a JSON object: \(line)")
            XCTAssertEqual(Set(object.keys), ["time", "level", "label", "message", "metadata"], "\(line)")
            objects.append(object)
        }
        func ports(_ message: String) -> [String] {
            objects.filter { $0["message"] as? String == message }.compactMap { ($0["metadata"] as? [String: String])?["port"] }
        }
        XCTAssertEqual(ports("port created"), ["loud"], "the info line of the port created at warning level was not filtered")
        let changes = objects.filter { $0["message"] as? String == "log level changed" }.compactMap { $0["metadata"] as? [String: String] }
        // info -> warning is logged before the change (info shows notices), warning -> debug after.
        XCTAssertEqual(changes, [["from": "info", "to": "warning"], ["from": "warning", "to": "debug"]])
        XCTAssertTrue(objects.contains { $0["level"] as? String == "notice" })
    }

    func testBadLevelsAreRefused() throws {
        let daemon = try SwitchDaemonProcess.forAPITests()
        try daemon.startForAPITests()
        defer { daemon.stop() }
        for (body, code) in [(#"{"level": "loud"}"#, "invalid_log_level"), (#"{"level": 3}"#, "invalid_log_level"),
                             (#"{}"#, "invalid_log_level"), (#"{"level": "debug", "x": 1}"#, "unknown_field"),
                             (#"["debug"]"#, "invalid_body")] {
            let reply = try daemon.api.request("PUT", "/v1/log-level", body: body)
            XCTAssertEqual(reply.status, 400, body)
            XCTAssertEqual(reply.errorCode, code, body)
        }
        XCTAssertEqual(try daemon.api.request("GET", "/v1/log-level").object["level"] as? String, "info")
        XCTAssertEqual(try daemon.api.request("DELETE", "/v1/log-level").status, 405)
    }

    func testUnknownLogFormatIsRefusedAtStartUp() throws {
        let daemon = try SwitchDaemonProcess.forAPITests()
        let refused = try daemon.runToExit(["--run-dir", daemon.runDirectory, "--state-dir", daemon.stateDirectory, "--log-format", "yaml"])
        XCTAssertNotEqual(refused.status, 0)
        XCTAssertTrue(refused.output.contains("--log-format must be text or json"), refused.output)
    }
}
