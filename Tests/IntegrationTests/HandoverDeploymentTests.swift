// The hand-over as systemd and Kubernetes drive it, with the built daemon: `systemctl reload`
// (deploy/systemd/vhost-switchd-reload under a stand-in for systemd's notification socket) and
// a DaemonSet rollout (deploy/kubernetes/vhost-switchd-pod, an old and a new pod sharing the run
// directory). Skipped while the daemon has no --takeover.
import Foundation
import TestSupport
import XCTest

final class HandoverDeploymentTests: XCTestCase {
    private func skipUnlessTakeover() throws {
        if let reason = SwitchDaemonProcess.unavailableReason { throw XCTSkip(reason) }
        let help = Process()
        help.executableURL = URL(fileURLWithPath: SwitchDaemonProcess.executablePath)
        help.arguments = ["--help"]
        let pipe = Pipe()
        help.standardOutput = pipe
        try help.run()
        let text = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        help.waitUntilExit()
        guard text.contains("--takeover") else {
            print("[handover-deployment] skipped: \(SwitchDaemonProcess.executablePath) has no --takeover")
            throw XCTSkip("vhost-switchd has no --takeover")
        }
    }

    private static let portBody = #"{"name": "p1", "type": "vhost-user", "socket": {"path": "p1.sock"}}"#

    /// A process that is not our child: gone once /proc has no entry (or only a zombie's).
    private static func waitUntilGone(_ pid: Int32, timeout: TimeInterval = 10) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
                  !status.contains("State:\tZ") else { return true }
            Thread.sleep(forTimeInterval: 0.02)
        }
        return false
    }

    /// Processes whose command line has every one of `arguments` (the daemon the reload script
    /// left running is not our child).
    private static func processes(runningWith arguments: [String]) -> [Int32] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap(Int32.init).filter { pid in
            guard let line = try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8) else { return false }
            let parts = Set(line.split(separator: "\0").map(String.init))
            return arguments.allSatisfy(parts.contains)
        }
    }

    func testSystemdReloadHandsOverToTheBinaryOnDiskAndTellsSystemd() throws {
        try skipUnlessTakeover()
        let manager = try ServiceManagerStandIn()
        let daemon = try SwitchDaemonProcess()
        daemon.environment = ["NOTIFY_SOCKET": manager.address, "WATCHDOG_USEC": "1000000"]
        try daemon.start(extraArguments: ["--pmd-threads", "1"])
        try daemon.waitUntilHealthy()
        XCTAssertNotNil(manager.waitFor("READY=1"), daemon.output)
        XCTAssertEqual(try daemon.api.request("POST", "/v1/ports", body: Self.portBody).status, 201)
        let oldPID = daemon.pid

        // ExecReload=vhost-switchd-reload $MAINPID <ExecStart's command line>; systemd passes
        // NOTIFY_SOCKET to it (NotifyAccess=all), not WATCHDOG_USEC.
        let status = try DeployScript.run(DeployScript.path("systemd/vhost-switchd-reload"),
                                          ["\(oldPID)", SwitchDaemonProcess.executablePath] + daemon.arguments,
                                          environment: ["NOTIFY_SOCKET": manager.address, "WATCHDOG_USEC": ""])
        let takeoverPIDs = Self.processes(runningWith: ["--takeover", "--run-dir", daemon.runDirectory])
        defer {
            for pid in takeoverPIDs {
                kill(pid, SIGTERM)
                _ = Self.waitUntilGone(pid)
            }
        }
        let mainPIDs = manager.messages.flatMap(\.assignments).filter { $0.hasPrefix("MAINPID=") }.compactMap { Int32($0.dropFirst(8)) }
        XCTAssertEqual(status, 0, daemon.output)
        XCTAssertFalse(daemon.isRunning, "the old daemon still runs")
        XCTAssertEqual(daemon.process?.terminationStatus, 0)
        XCTAssertEqual(try daemon.api.request("GET", "/v1/ports/p1").status, 200, "the new daemon serves the port on the same API socket")

        // systemd heard of the new main process, and only then of READY=1 from it.
        XCTAssertEqual(takeoverPIDs.count, 1, "one takeover process keeps running")
        let newPID = try XCTUnwrap(mainPIDs.last, "no MAINPID=: the hand-over does not call ServiceNotifier (\(manager.messages.map(\.text)))")
        XCTAssertEqual([newPID], takeoverPIDs, "MAINPID= names another process than the one that took over")
        let firstMainPID = try XCTUnwrap(manager.messages(with: "MAINPID=\(newPID)").first)
        XCTAssertTrue(manager.messages(with: "READY=1").contains { $0.nanoseconds >= firstMainPID.nanoseconds }, "no READY=1 after MAINPID=")
        // The new main process keeps the watchdog fed (the script passed the old one's interval on).
        let before = manager.messages(with: "WATCHDOG=1").count
        Thread.sleep(forTimeInterval: 1.6)
        XCTAssertGreaterThanOrEqual(manager.messages(with: "WATCHDOG=1").count - before, 2, "the new daemon does not ping the watchdog")
    }

    func testKubernetesRolloutTakesOverInTheSharedRunDirectory() throws {
        try skipUnlessTakeover()
        let node = try SwitchDaemonProcess()   // its directories stand for the node's host paths
        let flags = ["--run-dir=\(node.runDirectory)", "--socket-dir=\(node.socketDirectory)", "--state-dir=\(node.stateDirectory)", "--pmd-threads=1"]
        func pod(_ name: String) throws -> [String: String] {
            let state = node.baseDirectory + "/pod-" + name
            try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
            return ["POD_NAME": name, "VHOST_SWITCHD_POD_STATE": state, "VHOST_SWITCHD": SwitchDaemonProcess.executablePath,
                    "VHOST_SWITCHCTL": BuiltProduct.path("vhost-switchctl")]
        }
        func waitForAPI() -> Bool {
            let deadline = Date().addingTimeInterval(15)
            while Date() < deadline {
                if (try? node.api.request("GET", "/v1/health"))?.status == 200 { return true }
                Thread.sleep(forTimeInterval: 0.05)
            }
            return false
        }
        let script = DeployScript.path("kubernetes/vhost-switchd-pod")
        let oldPod = try DeployScript.launch(script, ["start"] + flags, environment: try pod("old"))
        defer { oldPod.terminate() }
        XCTAssertTrue(waitForAPI(), "the old pod's daemon never answered")
        XCTAssertEqual(try node.api.request("POST", "/v1/ports", body: Self.portBody).status, 201)

        // The rollout's surge pod starts beside it and takes over.
        let newPod = try DeployScript.launch(script, ["start"] + flags, environment: try pod("new"))
        defer { newPod.terminate() }
        let oldDaemonPIDFile = node.baseDirectory + "/pod-old/vhost-switchd.pid"
        let deadline = Date().addingTimeInterval(20)
        while FileManager.default.fileExists(atPath: oldDaemonPIDFile) && Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        XCTAssertFalse(FileManager.default.fileExists(atPath: oldDaemonPIDFile), "the old pod's daemon did not hand over")
        XCTAssertEqual(try String(contentsOfFile: node.runDirectory + "/handover-successor", encoding: .utf8), "new\n")
        XCTAssertTrue(waitForAPI())
        XCTAssertEqual(try node.api.request("GET", "/v1/ports/p1").status, 200, "the port is served by the new pod's daemon")
        XCTAssertTrue(oldPod.isRunning, "the old container exited after handing over: the kubelet would restart it")

        // The old pod's deletion: preStop finds the hand-over done, SIGTERM ends the container.
        let start = Date()
        XCTAssertEqual(try DeployScript.waitForExit(try DeployScript.launch(script, ["pre-stop"], environment: try pod("old")), timeout: 5), 0)
        XCTAssertLessThan(Date().timeIntervalSince(start), 2)
        oldPod.terminate()
        XCTAssertEqual(try DeployScript.waitForExit(oldPod), 0)
        XCTAssertEqual(try node.api.request("GET", "/v1/ports/p1").status, 200, "the old pod's end touched the new daemon")

        // The new pod deleted without a successor: no wait, a clean stop.
        XCTAssertEqual(try DeployScript.waitForExit(try DeployScript.launch(script, ["pre-stop"], environment: try pod("new")), timeout: 2), 0)
        newPod.terminate()
        XCTAssertEqual(try DeployScript.waitForExit(newPod, timeout: 15), 0)
        print("[handover-deployment] rollout: the new pod took over port p1 from the old one")
    }
}
