import Foundation
import TestSupport
import VhostSystem
import XCTest

/// Runs the built `vhost-switch-cni` exactly as a container runtime does: a fresh
/// environment with the CNI_* variables, the network configuration on stdin, the result or
/// error read from stdout, and the exit status.
struct CNIPlugin {
    struct Outcome {
        var status: Int32
        var stdout: String
        var stderr: String
        var json: [String: Any] { (try? JSONSerialization.jsonObject(with: Data(stdout.utf8))) as? [String: Any] ?? [:] }
        var errorCode: Int? { json["code"] as? Int }
    }

    /// The plugin built by the same `swift build` as the tests.
    static var executablePath: String { BuiltProduct.path("vhost-switch-cni") }

    var containerID = "3f2a9c1d7b4e5a6b7c8d9e0f11223344556677889900aabbccddeeff00112233"
    var ifname = "net1"
    var netns = "/var/run/netns/cni-test"
    var cniPath = "/opt/cni/bin"
    var args = "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=testpmd;K8S_POD_INFRA_CONTAINER_ID=3f2a9c1d7b4e"
    /// The install settings file (VHOST_SWITCH_CNI_SETTINGS); nil: the plugin's fixed path.
    var settingsFile: String?

    /// Writes install settings (see InstallSettings.swift) to <directory>/vhost-switch-cni.json,
    /// root-owned and writable by root only as the plugin insists, and returns the path.
    static func writeSettings(_ settings: [String: Any], in directory: String) throws -> String {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: directory)
        let file = directory + "/vhost-switch-cni.json"
        try JSONSerialization.data(withJSONObject: settings).write(to: URL(fileURLWithPath: file))
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: file)
        return file
    }

    @discardableResult
    func run(_ command: String, config: String, extraEnvironment: [String: String] = [:], omit: Set<String> = []) throws -> Outcome {
        guard FileManager.default.isExecutableFile(atPath: Self.executablePath) else {
            throw XCTSkip("vhost-switch-cni is not built next to the tests (\(Self.executablePath)); run swift build first")
        }
        var environment = ["PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "CNI_COMMAND": command, "CNI_CONTAINERID": containerID,
                           "CNI_NETNS": netns, "CNI_IFNAME": ifname, "CNI_ARGS": args, "CNI_PATH": cniPath]
        if let settingsFile { environment["VHOST_SWITCH_CNI_SETTINGS"] = settingsFile }
        for name in omit { environment[name] = nil }
        environment.merge(extraEnvironment) { _, new in new }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.executablePath)
        process.environment = environment
        let stdin = Pipe(), stdout = Pipe(), stderr = Pipe()
        process.standardInput = stdin
        process.standardOutput = stdout
        process.standardError = stderr
        signal(SIGPIPE, SIG_IGN)  // a plugin that exits without reading stdin must not kill the runner
        try process.run()
        try? stdin.fileHandleForWriting.write(contentsOf: Data(config.utf8))
        try? stdin.fileHandleForWriting.close()
        let out = stdout.fileHandleForReading.readDataToEndOfFile()
        let err = stderr.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Outcome(status: process.terminationStatus, stdout: String(decoding: out, as: UTF8.self), stderr: String(decoding: err, as: UTF8.self))
    }
}

/// A live daemon (the test kit's rig, one poll thread) for the plugin to talk to, and the
/// plugin's install settings beside the daemon's directories: the daemon's run directory and
/// `secretsDirectory` allowed, its socket directory, a device-info and a data directory.
final class LiveSwitch {
    let daemon: SwitchDaemonProcess
    var api: String { "unix://" + daemon.apiSocketPath }
    var runDirectory: String { String(daemon.apiSocketPath.dropLast("/api.sock".count)) }
    var dataDirectory: String { daemon.baseDirectory + "/cni-data" }
    var deviceInfoDirectory: String { daemon.baseDirectory + "/devinfo" }
    var secretsDirectory: String { daemon.baseDirectory + "/secrets" }
    let settingsFile: String

    init(extraArguments: [String] = []) throws {
        if let reason = SwitchDaemonProcess.unavailableReason { throw XCTSkip(reason) }
        daemon = try SwitchDaemonProcess(extraArguments: ["--pmd-threads", "1"] + extraArguments)
        try FileManager.default.createDirectory(atPath: daemon.baseDirectory + "/secrets", withIntermediateDirectories: true)
        settingsFile = try CNIPlugin.writeSettings(
            ["allowedDirectories": [String(daemon.apiSocketPath.dropLast("/api.sock".count)), daemon.baseDirectory + "/secrets"],
             "socketDirectory": daemon.socketDirectory, "deviceInfoDirectory": daemon.baseDirectory + "/devinfo",
             "dataDirectory": daemon.baseDirectory + "/cni-data"],
            in: daemon.baseDirectory + "/cni-settings")
        try daemon.waitUntilHealthy()
    }

    /// `base` (the default pod) set up to use this switch's install settings.
    func plugin(_ base: CNIPlugin = CNIPlugin()) -> CNIPlugin {
        var plugin = base
        plugin.settingsFile = settingsFile
        return plugin
    }

    deinit { daemon.stop() }

    /// GET with the rig's API client: the status and the JSON object.
    func get(_ path: String) throws -> (status: Int, json: [String: Any]) {
        let reply = try daemon.api.request("GET", path)
        return (reply.status, reply.object)
    }

    /// A network configuration for this daemon, with `extra` members merged in.
    func config(_ extra: [String: Any] = [:], cniVersion: String = "1.0.0", name: String = "vhost-net") -> String {
        var object: [String: Any] = ["cniVersion": cniVersion, "name": name, "type": "vhost-switch-cni", "api": api]
        object.merge(extra) { _, new in new }
        let data = try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
        return String(decoding: data, as: UTF8.self)
    }
}

/// A hostile stand-in for the daemon's API on a unix socket: GET of any port answers `port`,
/// DELETE answers 204, anything else 404. Records whether a DELETE came.
final class FakeAPIServer: @unchecked Sendable {
    private let listener: FileDescriptor
    private let lock = NSLock()
    private var deleted = false
    var sawDelete: Bool { lock.withLock { deleted } }

    init(path: String, port: String) throws {
        listener = try UnixSocket.listen(path: path)
        try listener.setNonBlocking(false)
        let thread = Thread { [self] in serve(port) }
        thread.start()
    }

    /// Wakes the blocked accept and closes the socket.
    func stop() {
        shutdown(listener.rawValue, Int32(SHUT_RDWR))
        listener.close()
    }

    private func serve(_ port: String) {
        while true {
            let raw = accept(listener.rawValue, nil, nil)
            if raw < 0 { return }
            let connection = FileDescriptor(adopting: raw)
            var request: [UInt8] = []
            var chunk = [UInt8](repeating: 0, count: 4096)
            while !String(decoding: request, as: UTF8.self).contains("\r\n\r\n") {
                // Unsafe: recv(2) fills the array's own buffer, bounded by its count.
                let n = chunk.withUnsafeMutableBytes { recv(raw, $0.baseAddress, $0.count, 0) }
                if n <= 0 { break }
                request += chunk[0..<n]
            }
            let method = String(decoding: request.prefix(while: { $0 != UInt8(ascii: " ") }), as: UTF8.self)
            let reply: String
            switch method {
            case "GET": reply = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: \(port.utf8.count)\r\n\r\n" + port
            case "DELETE":
                lock.withLock { deleted = true }
                reply = "HTTP/1.1 204 No Content\r\n\r\n"
            default: reply = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
            }
            // Unsafe: send(2) reads the reply's own bytes.
            _ = Array(reply.utf8).withUnsafeBytes { send(raw, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            connection.close()
        }
    }
}
