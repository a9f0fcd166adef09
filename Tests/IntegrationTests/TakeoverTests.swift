// Live hand-over (`vhost-switchd --takeover`) under traffic: dpdk-testpmd forwards `io`
// between two net_virtio_user ports on the daemon's two server-mode sockets (frames circulate
// a -> b -> testpmd -> a, fewer in flight than a ring holds, so a pause loses none). The new
// process must take the sessions over without testpmd noticing; a new process killed at any
// step before its commit must leave the old one forwarding.
import Foundation
import TestSupport
import VhostSystem
import XCTest

final class TakeoverTests: XCTestCase {
    /// The issue's target for the forwarding gap; the assertion is looser (a loaded 2-core VM).
    static let targetGap: TimeInterval = 0.050
    static let assertedGap: TimeInterval = 1.0

    private func skipUnlessTestpmdAndDaemon(_ test: String = #function) throws {
        if let reason = IntegrationEnvironment.printedSkipReason(test) ?? IntegrationEnvironment.printedDaemonSkipReason(test) {
            throw XCTSkip(reason)
        }
    }

    private static func config(mode: String, paths: [String] = ["a.sock", "b.sock"]) -> String {
        """
        {"ports": [
          {"name": "a", "type": "vhost-user", "socket": {"path": "\(paths[0])", "mode": "\(mode)"}, "queues": 1},
          {"name": "b", "type": "vhost-user", "socket": {"path": "\(paths[1])", "mode": "\(mode)"}, "queues": 1}
        ]}
        """
    }

    /// A daemon and testpmd forwarding through it. Server mode: the daemon listens. Client
    /// mode: testpmd listens (virtio-user server=1) in `sockets`, the daemon connects.
    private struct Forwarding {
        let daemon: SwitchDaemonProcess
        let frontEnd: Testpmd
        let sockets: TemporarySocketDirectory?
    }

    private func startForwarding(mode: String = "server", vdevOptions: [String] = []) throws -> Forwarding {
        if mode == "client" {
            let directory = try TemporarySocketDirectory()
            let paths = [directory.socket("a.sock"), directory.socket("b.sock")]
            let frontEnd = try Testpmd.frontEnd(sockets: paths, serverMode: true, cpu: 0, forwardMode: "io", burst: 32)
            let daemon = try SwitchDaemonProcess(config: Self.config(mode: mode, paths: paths),
                                                 extraArguments: ["--pmd-cpus", "1", "--socket-dir", directory.path])
            try frontEnd.waitForPrompt(timeout: 30)
            return try started(Forwarding(daemon: daemon, frontEnd: frontEnd, sockets: directory))
        }
        let daemon = try SwitchDaemonProcess(config: Self.config(mode: mode), extraArguments: ["--pmd-cpus", "1"])
        let sockets = [daemon.socketPath("a.sock"), daemon.socketPath("b.sock")]
        for socket in sockets { try daemon.waitForFile(socket) }
        let frontEnd = try Testpmd.frontEnd(sockets: sockets, cpu: 0, forwardMode: "io", burst: 32, vdevOptions: vdevOptions)
        return try started(Forwarding(daemon: daemon, frontEnd: frontEnd, sockets: nil))
    }

    private func started(_ rig: Forwarding) throws -> Forwarding {
        try rig.frontEnd.waitForLinkUp(ports: [0, 1])
        try rig.daemon.waitForLog("device ready")
        try rig.frontEnd.start(txFirst: 2)
        return rig
    }

    private struct Sample {
        var time: TimeInterval
        var received: UInt64
    }

    /// testpmd's received total (both ports) as often as it answers, while `condition` holds.
    private func sample(_ frontEnd: Testpmd, while condition: () -> Bool) throws -> [Sample] {
        var samples: [Sample] = []
        let start = Date()
        while condition() {
            let received = try frontEnd.portStats().reduce(0) { $0 + $1.rxPackets }
            samples.append(Sample(time: Date().timeIntervalSince(start), received: received))
        }
        return samples
    }

    private func sample(_ frontEnd: Testpmd, seconds: TimeInterval) throws -> [Sample] {
        let end = Date().addingTimeInterval(seconds)
        return try sample(frontEnd) { Date() < end }
    }

    /// The longest time between two samples that saw packets arrive, with none between
    /// (an upper bound of the gap: one sampling interval coarse).
    private static func longestStall(_ samples: [Sample]) -> TimeInterval {
        var lastMoved = samples.first?.time ?? 0
        var longest: TimeInterval = 0
        for (previous, current) in zip(samples, samples.dropFirst()) where current.received != previous.received {
            longest = max(longest, current.time - lastMoved)
            lastMoved = current.time
        }
        return max(longest, (samples.last?.time ?? 0) - lastMoved)
    }

    private static func rate(_ samples: [Sample]) -> Double {
        guard let first = samples.first, let last = samples.last, last.time > first.time else { return 0 }
        return Double(last.received - first.received) / (last.time - first.time)
    }

    private func device(_ daemon: SwitchDaemonProcess, _ port: String) throws -> [String: Any] {
        try daemon.api.expect("GET", "/v1/ports/\(port)/device").object
    }

    private func events(_ daemon: SwitchDaemonProcess) throws -> [[String: Any]] {
        let reply = try daemon.api.request("GET", "/v1/events", headers: ["Accept: application/json"])
        return reply.json as? [[String: Any]] ?? []
    }

    /// What the rings and counters say, for a failure message.
    private func diagnosis(_ daemon: SwitchDaemonProcess, _ frontEnd: Testpmd) -> String {
        let rings = ["a", "b"].map { (try? daemon.api.request("GET", "/v1/ports/\($0)/vrings").body) ?? "?" }
        let stats = (try? daemon.api.request("GET", "/v1/stats").body) ?? "?"
        return "vrings \(rings)\nstats \(stats.prefix(3000))\ntestpmd \((try? frontEnd.portStats()).map { "\($0)" } ?? "?")\n\(daemon.output.suffix(3000))"
    }

    func testTakeoverMidTrafficKeepsSessionsAndForwarding() throws {
        try skipUnlessTestpmdAndDaemon()
        try assertTakeoverKeepsForwarding(mode: "server")
    }

    /// The switch as the client of the front-end's sockets (the mode that also survives kill -9).
    func testTakeoverOfClientModePortsMidTraffic() throws {
        try skipUnlessTestpmdAndDaemon()
        try assertTakeoverKeepsForwarding(mode: "client")
    }

    /// Packed rings (virtio-user packed_vq=1): positions and wrap counters handed over.
    func testTakeoverOfPackedRingsMidTraffic() throws {
        try skipUnlessTestpmdAndDaemon()
        try assertTakeoverKeepsForwarding(mode: "server", vdevOptions: ["packed_vq=1"])
    }

    private func assertTakeoverKeepsForwarding(mode: String, vdevOptions: [String] = []) throws {
        let rig = try startForwarding(mode: mode, vdevOptions: vdevOptions)
        let (daemon, frontEnd) = (rig.daemon, rig.frontEnd)
        defer { frontEnd.quit(); daemon.stop() }
        let devicesBefore = try ["a", "b"].map { try device(daemon, $0) }
        let lastEventBefore = try events(daemon).compactMap { $0["id"] as? Int }.max() ?? 0
        let before = try sample(frontEnd, seconds: 1.0)
        XCTAssertGreaterThan(Self.rate(before), 1000, "testpmd forwards through the old daemon")
        let outputBefore = frontEnd.fullOutput.count

        let successor = try SwitchDaemonProcess.takingOver(from: daemon)
        defer { successor.stop() }
        var during = try sample(frontEnd) { daemon.isRunning && successor.isRunning }
        XCTAssertEqual(daemon.waitForExit(timeout: 30), 0, "the old daemon exits 0:\n\(daemon.output)\nnew:\n\(successor.output)")
        during += try sample(frontEnd, seconds: 0.5).map { Sample(time: $0.time + (during.last?.time ?? 0), received: $0.received) }
        let after = try sample(frontEnd, seconds: 1.0)
        try successor.waitUntilHealthy()

        let gap = Self.longestStall(during)
        print("[takeover] \(mode) mode\(vdevOptions.isEmpty ? "" : " " + vdevOptions.joined(separator: ",")): forwarding gap \(Int(gap * 1000)) ms (target < \(Int(Self.targetGap * 1000)) ms); "
              + "rate before \(Int(Self.rate(before))) pps, after \(Int(Self.rate(after))) pps; \(during.count) samples during")
        XCTAssertLessThan(gap, Self.assertedGap, "longest time with no packet moving")
        XCTAssertGreaterThan(Self.rate(after), Self.rate(before) * 0.5, "the rate after the hand-over is the rate before: "
                             + diagnosis(successor, frontEnd))
        XCTAssertEqual(after.first.map { $0.received > before.last!.received }, true, "no counter went back: the same sessions")
        let linkOutput = String(frontEnd.fullOutput.dropFirst(outputBefore))
        XCTAssertFalse(linkOutput.contains("link state change"), "testpmd saw a link change:\n\(linkOutput.suffix(2000))")
        XCTAssertEqual(try frontEnd.linkStatus(), [0: true, 1: true])

        for (port, old) in zip(["a", "b"], devicesBefore) {
            let new = try device(successor, port)
            XCTAssertEqual(new["state"] as? String, "ready", "\(port): \(new)")
            XCTAssertEqual(new["sessions"] as? Int, old["sessions"] as? Int, "\(port): the same session, not a new one")
            let mask = { (device: [String: Any]) in
                (((device["features"] as? [String: Any])?["negotiated"]) as? [String: Any])?["mask"] as? String
            }
            XCTAssertNotNil(mask(new))
            XCTAssertEqual(mask(new), mask(old), "\(port): the negotiated features")
        }
        if vdevOptions.contains("packed_vq=1") {
            let rings = (try successor.api.expect("GET", "/v1/ports/a/vrings").object["vrings"] as? [[String: Any]]) ?? []
            XCTAssertEqual(Set(rings.compactMap { $0["layout"] as? String }), ["packed"], "\(rings)")
        }
        let newEvents = try events(successor)
        XCTAssertEqual(newEvents.first?["type"] as? String, "daemon.handover_started")
        XCTAssertEqual(newEvents.first?["id"] as? Int, lastEventBefore + 1, "event ids continue from the old daemon's")
        let completed = newEvents.first { $0["type"] as? String == "daemon.handover_completed" }
        XCTAssertNotNil((completed?["data"] as? [String: Any])?["gap_ms"] as? Int, "\(newEvents)")
        let replayed: Set<String> = ["device.connected", "device.ready", "features.changed", "vring.state_changed"]
        XCTAssertFalse(newEvents.contains { replayed.contains($0["type"] as? String ?? "") }, "no new connection or set-up: \(newEvents)")
        XCTAssertFalse(successor.output.contains("cannot listen for a hand-over"), "the successor can be taken over in turn:\n\(successor.output)")
        XCTAssertEqual(successor.stop(), 0, successor.output)
    }

    /// The API's listeners (unix socket, TCP, metrics) are handed over: the successor answers
    /// on the same addresses, and nothing was unlinked on the way.
    func testTakeoverKeepsTheAPIListeners() throws {
        if let reason = IntegrationEnvironment.printedDaemonSkipReason() { throw XCTSkip(reason) }
        let metricsPort = UnusedTCPPort.pick()
        let daemon = try SwitchDaemonProcess()
        try daemon.start(config: Self.config(mode: "server"), extraArguments: ["--metrics-listen", "127.0.0.1:\(metricsPort)"], listenTCP: true)
        defer { daemon.stop() }
        try daemon.waitUntilHealthy()
        let socketInode = try FileManager.default.attributesOfItem(atPath: daemon.apiSocketPath)[.systemFileNumber] as? Int
        let successor = try SwitchDaemonProcess.takingOver(from: daemon)
        defer { successor.stop() }
        XCTAssertEqual(daemon.waitForExit(timeout: 30), 0, "\(daemon.output)\nnew:\n\(successor.output)")
        try successor.waitUntilHealthy()
        XCTAssertEqual(try FileManager.default.attributesOfItem(atPath: successor.apiSocketPath)[.systemFileNumber] as? Int, socketInode,
                       "the same API socket file, never unlinked and bound again")
        XCTAssertEqual(try successor.tcpAPI().request("GET", "/v1/ports").status, 200)
        XCTAssertEqual(try SwitchAPIClient(tcpPort: metricsPort).request("GET", "/metrics").status, 200)
        for socket in ["a.sock", "b.sock"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: successor.socketPath(socket)), "\(socket) is still there")
        }
        XCTAssertEqual(try successor.api.expect("GET", "/v1/ports").object["ports"].map { ($0 as? [Any])?.count }, 2)
    }

    func testNewProcessKilledAtEachStepLeavesTheOldForwarding() throws {
        try checkNewProcessKilledAtEachStep()
    }

    /// Packed rings have no used index in guest memory to resume from: the new process must
    /// not have moved them before its commit.
    func testNewProcessKilledAtEachStepLeavesTheOldForwardingPackedRings() throws {
        try checkNewProcessKilledAtEachStep(vdevOptions: ["packed_vq=1"])
    }

    /// A peer on handover.sock that is not a well-behaved `--takeover` (silent, a frame too
    /// large announced, something else than the request, the request then a hang-up at each
    /// point, a refusal instead of the commit): the old daemon keeps (or goes back to)
    /// forwarding the neighbours' traffic with the same sessions, answers REST, and a real
    /// takeover still works afterwards.
    func testHostileHandoverPeersLeaveTheDaemonForwarding() throws {
        try skipUnlessTestpmdAndDaemon()
        let rig = try startForwarding()
        let (daemon, frontEnd) = (rig.daemon, rig.frontEnd)
        defer { frontEnd.quit(); daemon.stop() }
        let sessions = try device(daemon, "a")["sessions"] as? Int
        let path = daemon.runDirectory + "/handover.sock"
        let takeover = Array("takeover".utf8)
        let peers: [(String, (HandoverChannel) throws -> Void)] = [
            ("silent, then gone", { _ in Thread.sleep(forTimeInterval: 0.3) }),
            ("announces a 4 GiB frame", { channel in
                _ = try UnixSocket.send(channel.socket, bytes: [0xff, 0xff, 0xff, 0xff], fds: []) }),
            ("sends another request", { channel in try channel.send(frame: Array("give me everything".utf8)) }),
            ("asks, then hangs up at once", { channel in try channel.send(frame: takeover) }),
            ("asks, reads the state, hangs up", { channel in
                try channel.send(frame: takeover)
                _ = try channel.receiveFrame(timeoutMilliseconds: 5000) }),
            ("asks, takes state and fds, refuses", { channel in
                try channel.send(frame: takeover)
                let document = try channel.receiveFrame(timeoutMilliseconds: 5000)
                let object = try JSONSerialization.jsonObject(with: Data(document)) as? [String: Any]
                let count = object?["descriptor_count"] as? Int ?? 0
                for descriptor in try channel.receiveDescriptors(count: count, timeoutMilliseconds: 5000) { descriptor.close() }
                try channel.send(frame: Array("no".utf8)) }),
            ("answers the commit with garbage bytes", { channel in
                try channel.send(frame: takeover)
                _ = try channel.receiveFrame(timeoutMilliseconds: 5000)
                _ = try UnixSocket.send(channel.socket, bytes: [0x06, 0, 0, 0, 0x63, 0x6f], fds: []) }),
        ]
        for (name, behave) in peers {
            let channel = try HandoverChannel.connect(path: path)
            XCTAssertNoThrow(try behave(channel), name)
            channel.socket.close()
            // A peer that asked was given up at its hang-up: forwarding is back at once.
            try checkStillServing(daemon, frontEnd, sessions: sessions, name)
        }
        try checkTakeoverStillWorks(from: daemon, frontEnd)
    }

    /// After a failed hand-over: the old daemon runs, forwards testpmd's traffic again with
    /// the same session, and answers REST.
    private func checkStillServing(_ daemon: SwitchDaemonProcess, _ frontEnd: Testpmd, sessions: Int?, _ label: String) throws {
        XCTAssertTrue(daemon.isRunning, "\(label): the old daemon must keep running:\n\(daemon.output.suffix(3000))")
        let moving = try sample(frontEnd, seconds: 0.5)
        XCTAssertGreaterThan(moving.last?.received ?? 0, moving.first?.received ?? 0,
                             "\(label): the old daemon forwards again: \(diagnosis(daemon, frontEnd))")
        let a = try device(daemon, "a")
        XCTAssertEqual(a["state"] as? String, "ready", "\(label): \(a)")
        XCTAssertEqual(a["sessions"] as? Int, sessions, "\(label): the same session")
        XCTAssertEqual(try daemon.api.request("GET", "/v1/ports").status, 200, "\(label): the old daemon answers REST")
    }

    /// After all that, a real takeover still works and the successor forwards.
    private func checkTakeoverStillWorks(from daemon: SwitchDaemonProcess, _ frontEnd: Testpmd) throws {
        XCTAssertEqual(try frontEnd.linkStatus(), [0: true, 1: true])
        let successor = try SwitchDaemonProcess.takingOver(from: daemon)
        defer { successor.stop() }
        XCTAssertEqual(daemon.waitForExit(timeout: 30), 0, "\(daemon.output)\nnew:\n\(successor.output)")
        try successor.waitUntilHealthy()
        let moving = try sample(frontEnd, seconds: 0.5)
        XCTAssertGreaterThan(moving.last?.received ?? 0, moving.first?.received ?? 0, "the successor forwards")
    }

    private func checkNewProcessKilledAtEachStep(vdevOptions: [String] = [], test: String = #function) throws {
        try skipUnlessTestpmdAndDaemon(test)
        let rig = try startForwarding(vdevOptions: vdevOptions)
        let (daemon, frontEnd) = (rig.daemon, rig.frontEnd)
        defer { frontEnd.quit(); daemon.stop() }
        let sessions = try device(daemon, "a")["sessions"] as? Int
        for step in ["connected", "received", "adopted", "serving"] {
            let doomed = try SwitchDaemonProcess.takingOver(from: daemon, environment: ["VHOST_SWITCH_HANDOVER_CRASH_AT": step])
            let status = doomed.waitForExit(timeout: 30)
            XCTAssertNotNil(status, "\(step): the new process was to kill itself:\n\(doomed.output)")
            XCTAssertNotEqual(status, 0, step)
            try checkStillServing(daemon, frontEnd, sessions: sessions, step)
        }
        try checkTakeoverStillWorks(from: daemon, frontEnd)
    }
}
