import Foundation
import TestSupport
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

    @discardableResult
    func run(_ command: String, config: String, extraEnvironment: [String: String] = [:], omit: Set<String> = []) throws -> Outcome {
        guard FileManager.default.isExecutableFile(atPath: Self.executablePath) else {
            throw XCTSkip("vhost-switch-cni is not built next to the tests (\(Self.executablePath)); run swift build first")
        }
        var environment = ["PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "CNI_COMMAND": command, "CNI_CONTAINERID": containerID,
                           "CNI_NETNS": netns, "CNI_IFNAME": ifname, "CNI_ARGS": args, "CNI_PATH": cniPath]
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

/// A live daemon (the test kit's rig, one poll thread) for the plugin to talk to, and a data
/// directory for the plugin beside the daemon's directories.
final class LiveSwitch {
    let daemon: SwitchDaemonProcess
    var api: String { "unix://" + daemon.apiSocketPath }
    let dataDirectory: String

    init(extraArguments: [String] = []) throws {
        if let reason = SwitchDaemonProcess.unavailableReason { throw XCTSkip(reason) }
        daemon = try SwitchDaemonProcess(extraArguments: ["--pmd-threads", "1"] + extraArguments)
        dataDirectory = daemon.baseDirectory + "/cni-data"
        try daemon.waitUntilHealthy()
    }

    deinit { daemon.stop() }

    /// GET with the rig's API client: the status and the JSON object.
    func get(_ path: String) throws -> (status: Int, json: [String: Any]) {
        let reply = try daemon.api.request("GET", path)
        return (reply.status, reply.object)
    }

    /// A network configuration for this daemon, with `extra` members merged in.
    func config(_ extra: [String: Any] = [:], cniVersion: String = "1.0.0", name: String = "vhost-net") -> String {
        var object: [String: Any] = ["cniVersion": cniVersion, "name": name, "type": "vhost-switch-cni", "api": api,
                                     "dataDir": dataDirectory]
        object.merge(extra) { _, new in new }
        let data = try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
        return String(decoding: data, as: UTF8.self)
    }
}
