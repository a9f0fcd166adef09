import Foundation
import TestSupport
import VhostSystem
import XCTest

/// The hand-over scripts in deploy/ (systemd's ExecReload, the DaemonSet container's command
/// and preStop), run with stand-in binaries: shell scripts that record how they were started
/// and act as a daemon that takes over, fails, or hands over.
final class DeployScriptTests: XCTestCase {
    private var directory = ""

    override func setUpWithError() throws {
        directory = NSTemporaryDirectory() + "deploy-scripts-" + String(UInt32.random(in: 0...UInt32.max), radix: 36)
        try FileManager.default.createDirectory(atPath: directory + "/run", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: directory + "/pod", withIntermediateDirectories: true)
    }

    override func tearDown() {
        try? FileManager.default.removeItem(atPath: directory)
    }

    // MARK: systemd: ExecReload

    func testReloadSucceedsWhenTheOldMainProcessExitsAndKeepsTheNewOne() throws {
        let old = try DeployScript.launch("/bin/sleep", ["30"], environment: ["WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"])
        defer { old.terminate() }
        // The new daemon: records its arguments and watchdog environment, tells the old one to
        // exit (the hand-over's commit), and keeps running.
        let daemon = try fakeBinary("vhost-switchd", """
            echo "$* watchdog=${WATCHDOG_USEC:-unset} pid=${WATCHDOG_PID:-unset}" > \(directory)/started
            echo $$ > \(directory)/new-pid
            kill \(old.processIdentifier)
            exec sleep 30
            """)
        XCTAssertEqual(try DeployScript.run(DeployScript.path("systemd/vhost-switchd-reload"), ["\(old.processIdentifier)", daemon, "--run-dir", "/run/x"]), 0)
        XCTAssertEqual(try read("started"), "--run-dir /run/x --takeover watchdog=30000000 pid=unset\n",
                       "the old daemon's flags plus --takeover, its watchdog interval, no WATCHDOG_PID")
        XCTAssertFalse(old.isRunning)
        let newDaemon = try XCTUnwrap(Int32(try read("new-pid").trimmingCharacters(in: .whitespacesAndNewlines)))
        XCTAssertEqual(kill(newDaemon, 0), 0, "the new daemon keeps running after the reload")
        kill(newDaemon, SIGKILL)
    }

    func testReloadFailsWithTheTakeoverStatusAndTheOldProcessKeepsServing() throws {
        let old = try DeployScript.launch("/bin/sleep", ["30"])
        defer { old.terminate() }
        let daemon = try fakeBinary("vhost-switchd", "exit 3")
        XCTAssertEqual(try DeployScript.run(DeployScript.path("systemd/vhost-switchd-reload"), ["\(old.processIdentifier)", daemon]), 3)
        XCTAssertTrue(old.isRunning)
        // No main process: nothing to take over from.
        XCTAssertEqual(try DeployScript.run(DeployScript.path("systemd/vhost-switchd-reload"), ["999999999", daemon]), 1)
    }

    // MARK: Kubernetes: the container's command and preStop

    func testPodStartsPlainlyWhenNoDaemonServesAndStopsOnSIGTERM() throws {
        let pod = try startPod(name: "new", switchctlAnswers: false)
        try waitForFile("started")
        XCTAssertEqual(try read("started"), "--run-dir \(directory)/run --pmd-threads=1\n")
        pod.terminate()
        XCTAssertEqual(try DeployScript.waitForExit(pod), 0)
        XCTAssertTrue(FileManager.default.fileExists(atPath: directory + "/terminated"), "SIGTERM reached the daemon")
    }

    func testPodTakesOverWhenADaemonServesTheRunDirectory() throws {
        let handover = try ServiceManagerSocket.listen(path: directory + "/run/handover.sock")
        defer { handover.close() }
        // A socket file whose daemon no longer answers (kill -9): start plainly.
        let stale = try startPod(name: "new", switchctlAnswers: false)
        try waitForFile("started")
        XCTAssertFalse(try read("started").contains("--takeover"))
        stale.terminate()
        _ = try DeployScript.waitForExit(stale)
        try FileManager.default.removeItem(atPath: directory + "/started")

        let pod = try startPod(name: "new", switchctlAnswers: true)
        try waitForFile("started")
        XCTAssertEqual(try read("started"), "--takeover --run-dir \(directory)/run --pmd-threads=1\n")
        XCTAssertEqual(try read("run/handover-successor"), "new\n")
        pod.terminate()
        XCTAssertEqual(try DeployScript.waitForExit(pod), 0)
    }

    /// A daemon from before hand-overs (its API answers, no hand-over socket): the new pod
    /// waits for it to stop instead of failing against its sockets, then starts plainly.
    func testPodWaitsForADaemonWithoutHandOverToStop() throws {
        let pod = try startPod(name: "new", switchctlAnswers: true)
        defer { pod.terminate() }
        Thread.sleep(forTimeInterval: 1.5)
        XCTAssertFalse(FileManager.default.fileExists(atPath: directory + "/started"), "started beside a running daemon")
        XCTAssertTrue(pod.isRunning)
        setAPIAnswers(false)
        try waitForFile("started")
        XCTAssertFalse(try read("started").contains("--takeover"))
    }

    /// The old pod: preStop waits for the hand-over to the successor, and the container stays
    /// up after its daemon exited 0 (an exited container would be restarted and take over back).
    func testOldPodWaitsForTheHandOverAndThenForItsDeletion() throws {
        let old = try startPod(name: "old", switchctlAnswers: false)
        try waitForFile("started")
        // Without a successor, preStop returns at once.
        let alone = try DeployScript.launch(DeployScript.path("kubernetes/vhost-switchd-pod"), ["pre-stop"], environment: podEnvironment("old"))
        XCTAssertEqual(try DeployScript.waitForExit(alone, timeout: 2), 0)

        try "new\n".write(toFile: directory + "/run/handover-successor", atomically: true, encoding: .utf8)
        let preStop = try DeployScript.launch(DeployScript.path("kubernetes/vhost-switchd-pod"), ["pre-stop"], environment: podEnvironment("old"))
        Thread.sleep(forTimeInterval: 0.5)
        XCTAssertTrue(preStop.isRunning, "preStop returned before the hand-over")
        // The hand-over's end: the old daemon exits 0 by itself.
        FileManager.default.createFile(atPath: directory + "/handed-over", contents: nil)
        XCTAssertEqual(try DeployScript.waitForExit(preStop, timeout: 5), 0)
        Thread.sleep(forTimeInterval: 0.5)
        XCTAssertTrue(old.isRunning, "the container exited after handing over: the kubelet would restart it")
        old.terminate()
        XCTAssertEqual(try DeployScript.waitForExit(old), 0)
    }

    func testPreStopWaitIsBounded() throws {
        let old = try startPod(name: "old", switchctlAnswers: false)
        defer { old.terminate() }
        try waitForFile("started")
        try "new\n".write(toFile: directory + "/run/handover-successor", atomically: true, encoding: .utf8)
        var environment = podEnvironment("old")
        environment["VHOST_SWITCHD_HANDOVER_WAIT"] = "1"
        let start = Date()
        let preStop = try DeployScript.launch(DeployScript.path("kubernetes/vhost-switchd-pod"), ["pre-stop"], environment: environment)
        XCTAssertEqual(try DeployScript.waitForExit(preStop, timeout: 5), 0)
        XCTAssertGreaterThanOrEqual(Date().timeIntervalSince(start), 1)
        XCTAssertTrue(old.isRunning)
    }

    // MARK: Helpers

    /// The pod script with a stand-in daemon (records its arguments; exits 0 on SIGTERM or when
    /// `handed-over` appears) and a stand-in vhost-switchctl that answers or not.
    private func startPod(name: String, switchctlAnswers: Bool) throws -> Process {
        try fakeBinary("vhost-switchd", """
            trap 'touch \(directory)/terminated; exit 0' TERM
            echo "$*" > \(directory)/started.tmp && mv \(directory)/started.tmp \(directory)/started
            while [ ! -e \(directory)/handed-over ]; do sleep 0.05; done
            exit 0
            """)
        try fakeBinary("vhost-switchctl", "[ -e \(directory)/api-up ]")
        setAPIAnswers(switchctlAnswers)
        return try DeployScript.launch(DeployScript.path("kubernetes/vhost-switchd-pod"), ["start", "--run-dir", directory + "/run", "--pmd-threads=1"],
                          environment: podEnvironment(name))
    }

    private func setAPIAnswers(_ answers: Bool) {
        if answers {
            FileManager.default.createFile(atPath: directory + "/api-up", contents: nil)
        } else {
            try? FileManager.default.removeItem(atPath: directory + "/api-up")
        }
    }

    private func podEnvironment(_ name: String) -> [String: String] {
        ["POD_NAME": name, "VHOST_SWITCHD_POD_STATE": directory + "/pod",
         "VHOST_SWITCHD": directory + "/vhost-switchd", "VHOST_SWITCHCTL": directory + "/vhost-switchctl"]
    }

    @discardableResult
    private func fakeBinary(_ name: String, _ body: String) throws -> String {
        let path = directory + "/" + name
        try ("#!/bin/sh\n" + body + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: path)
        return path
    }

    private func waitForFile(_ relative: String, timeout: TimeInterval = 5) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while !FileManager.default.fileExists(atPath: directory + "/" + relative) {
            guard Date() < deadline else { return XCTFail("\(relative) did not appear") }
            Thread.sleep(forTimeInterval: 0.02)
        }
    }

    private func read(_ relative: String) throws -> String {
        try String(contentsOfFile: directory + "/" + relative, encoding: .utf8)
    }
}
