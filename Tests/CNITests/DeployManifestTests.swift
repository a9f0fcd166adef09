import Foundation
import XCTest
@testable import vhost_switch_cni

/// deploy/: every YAML parses (PyYAML), and the paths, ports and binaries the manifests, the
/// systemd unit and the Dockerfile name agree with each other and with the daemon's defaults.
final class DeployManifestTests: XCTestCase {
    static var repository: URL {
        // Tests/CNITests/DeployManifestTests.swift -> the repository root.
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }

    func testManifestsParseAndAgreeWithTheImage() throws {
        let python = "/usr/bin/python3"
        guard FileManager.default.isExecutableFile(atPath: python) else { throw XCTSkip("python3 is not installed") }
        let script = Self.repository.appendingPathComponent("deploy/check-manifests.py").path
        let process = Process()
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = [script, Self.repository.path]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        if process.terminationStatus == 77 { throw XCTSkip(output) }
        XCTAssertEqual(process.terminationStatus, 0, output)
        XCTAssertTrue(output.contains("deploy/ is consistent"), output)
    }

    /// The defaults the manifests rely on are the daemon's own (its flag declarations).
    func testDaemonDefaultsMatchTheDeployment() throws {
        let daemon = try String(contentsOf: Self.repository.appendingPathComponent("Sources/vhost-switchd/VhostSwitchDaemon.swift"), encoding: .utf8)
        XCTAssertTrue(daemon.contains(#"var runDir = "/run/vhost-switch""#))
        XCTAssertTrue(daemon.contains(#"var stateDir = "/var/lib/vhost-switch""#))
        XCTAssertTrue(daemon.contains(#"socketDir ?? runDir + "/sockets""#))
        XCTAssertTrue(daemon.contains(#"apiSocket ?? runDir + "/api.sock""#))
        let plugin = try String(contentsOf: Self.repository.appendingPathComponent("Sources/vhost-switch-cni/Configuration.swift"), encoding: .utf8)
        XCTAssertTrue(plugin.contains(#"defaultAPI = "unix:///run/vhost-switch/api.sock""#))
        // check-manifests.py holds the plugin's install settings defaults and file name.
        let script = try String(contentsOf: Self.repository.appendingPathComponent("deploy/check-manifests.py"), encoding: .utf8)
        let defaults = InstallSettings()
        XCTAssertTrue(script.contains(#"SETTINGS_FILE = "\#(InstallSettings.path)""#))
        XCTAssertTrue(script.contains(#"install_settings = {"allowedDirectories": ["\#(defaults.allowedDirectories.joined(separator: "\", \""))"], "socketDirectory": "\#(defaults.socketDirectory)"}"#))
        XCTAssertEqual(defaults.socketDirectory, "/run/vhost-switch/sockets")
    }
}
