// Faults around a live vhost-switchd: front-ends killed mid-traffic, the daemon itself killed
// and restarted under traffic (client-mode ports), an af-packet interface deleted and
// re-created, the memory table replaced while traffic flows. Each test prints its numbers
// (iterations, the daemon's fds and RSS before and after).
//
// FAULT_KILL_ITERATIONS (default 100) and FAULT_RESTARTS (default 3) set the counts.
import Foundation
import TestSupport
import VhostSystem
import XCTest

final class FaultTests: XCTestCase {
    private func skipUnlessIntegrationEnvironment(_ test: String = #function) throws {
        if let reason = IntegrationEnvironment.printedSkipReason(test) { throw XCTSkip(reason) }
        guard FileManager.default.isExecutableFile(atPath: SwitchDaemonProcess.executablePath) else {
            print("[skip] \(test): \(SwitchDaemonProcess.executablePath) is not built")
            throw XCTSkip("vhost-switchd is not built")
        }
    }

    private func environmentInt(_ name: String, _ fallback: Int) -> Int {
        Int(ProcessInfo.processInfo.environment[name] ?? "") ?? fallback
    }

    private func twoPorts(mode: String, paths: [String] = ["a.sock", "b.sock"]) -> String {
        """
        {"ports": [
          {"name": "a", "type": "vhost-user", "socket": {"path": "\(paths[0])", "mode": "\(mode)"}},
          {"name": "b", "type": "vhost-user", "socket": {"path": "\(paths[1])", "mode": "\(mode)"}}
        ]}
        """
    }

    /// Sends `bursts` x 16 64-byte frames from each port and waits until each port received
    /// at least that many more than `baseline`.
    private func assertForwards(_ frontEnd: Testpmd, bursts: Int = 2, _ context: String,
                                file: StaticString = #filePath, line: UInt = #line) throws {
        try frontEnd.clearStats()
        try frontEnd.start(txFirst: bursts)
        let wanted = UInt64(bursts * 16)
        do {
            _ = try frontEnd.waitForPortStats(timeout: 10) { $0.count == 2 && $0.allSatisfy { $0.rxPackets >= wanted } }
        } catch {
            XCTFail("\(context): no forwarding: \(error)", file: file, line: line)
        }
        _ = try frontEnd.stop()
    }

    private func occurrences(_ text: String, in output: String) -> Int { output.components(separatedBy: text).count - 1 }

    /// GET on the daemon's API socket: the body, for diagnostics in failure messages.
    private func api(_ daemon: SwitchDaemonProcess, _ path: String) -> String {
        (try? daemon.api.request("GET", path).body) ?? "(curl failed)"
    }

    // MARK: Front-end SIGKILLed mid-traffic

    func testFrontEndKilledMidTraffic100Times() throws {
        try skipUnlessIntegrationEnvironment()
        let iterations = environmentInt("FAULT_KILL_ITERATIONS", 100)
        let daemon = try SwitchDaemonProcess(config: twoPorts(mode: "server"), extraArguments: ["--pmd-cpus", "1", "--log-level", "warning"])
        defer { daemon.stop() }
        let sockets = [daemon.socketPath("a.sock"), daemon.socketPath("b.sock")]
        for socket in sockets { try daemon.waitForFile(socket) }
        // One clean round first so lazily allocated state is in the "before" numbers.
        do {
            let warm = try Testpmd.frontEnd(sockets: sockets, cpu: 0, forwardMode: "io", burst: 16)
            try warm.waitForLinkUp(ports: [0, 1])
            try assertForwards(warm, "warm-up")
            warm.quit()
        }
        Thread.sleep(forTimeInterval: 0.3)
        let fdsBefore = daemon.openFileCount(), rssBefore = daemon.residentKiB()
        let started = Date()
        var killed = 0
        for round in 1...iterations {
            let frontEnd = try Testpmd.frontEnd(sockets: sockets, cpu: 0, forwardMode: "io", burst: 16)
            try frontEnd.waitForLinkUp(ports: [0, 1])
            // Traffic circulates (io forwarding) when the kill comes; every 10th round checks it.
            try frontEnd.start(txFirst: 4)
            if round % 10 == 0 {
                _ = try frontEnd.waitForPortStats(timeout: 10) { $0.count == 2 && $0.allSatisfy { $0.rxPackets > 64 } }
            }
            kill(frontEnd.processIdentifier, SIGKILL)
            frontEnd.terminate()  // reaps and removes DPDK's files
            killed += 1
            XCTAssertTrue(daemon.isRunning, "round \(round): the daemon died:\n\(daemon.output.suffix(4000))")
            if !daemon.isRunning { break }
        }
        // The ports still work after all that.
        let final = try Testpmd.frontEnd(sockets: sockets, cpu: 0, forwardMode: "io", burst: 16)
        try final.waitForLinkUp(ports: [0, 1])
        try assertForwards(final, "after \(killed) kills")
        XCTAssertEqual(final.quit(), 0)
        Thread.sleep(forTimeInterval: 0.5)
        let fdsAfter = daemon.openFileCount(), rssAfter = daemon.residentKiB()
        print("[fault] front-end SIGKILLed mid-traffic \(killed) times in \(Int(Date().timeIntervalSince(started))) s; "
              + "daemon fds \(fdsBefore) -> \(fdsAfter), RSS \(rssBefore) -> \(rssAfter) KiB")
        XCTAssertEqual(fdsAfter, fdsBefore, "the daemon's fd count changed")
        XCTAssertLessThan(rssAfter - rssBefore, 16 * 1024, "the daemon's RSS grew by more than 16 MiB")
        XCTAssertEqual(daemon.stop(), 0, String(daemon.output.suffix(4000)))
    }

    // MARK: Daemon SIGKILLed and restarted under traffic (client-mode ports)

    func testDaemonKilledAndRestartedUnderTrafficWithClientModePorts() throws {
        try skipUnlessIntegrationEnvironment()
        let restarts = environmentInt("FAULT_RESTARTS", 3)
        let directory = try TemporarySocketDirectory()
        defer { directory.remove() }
        let sockets = [directory.socket("a.sock"), directory.socket("b.sock")]
        // The front-end owns the sockets (virtio-user server=1) and waits for the switch.
        let frontEnd = try Testpmd.frontEnd(sockets: sockets, serverMode: true, cpu: 0, forwardMode: "io", burst: 16)
        defer { frontEnd.quit() }
        var daemon = try SwitchDaemonProcess(config: twoPorts(mode: "client", paths: sockets),
                                             extraArguments: ["--pmd-cpus", "1", "--socket-dir", directory.path])
        defer { daemon.stop() }
        try frontEnd.waitForPrompt(timeout: 30)
        try frontEnd.waitForLinkUp(ports: [0, 1])
        try daemon.waitForLog("device ready")
        try assertForwards(frontEnd, "first daemon")
        let started = Date()
        for round in 1...restarts {
            // Traffic circulating when the daemon dies.
            try frontEnd.start(txFirst: 4)
            _ = try frontEnd.waitForPortStats(timeout: 10) { $0.count == 2 && $0.allSatisfy { $0.rxPackets > 64 } }
            let oldPID = daemon.pid
            daemon.crash()
            _ = try frontEnd.stop()
            daemon = try SwitchDaemonProcess(config: twoPorts(mode: "client", paths: sockets),
                                             extraArguments: ["--pmd-cpus", "1", "--socket-dir", directory.path],
                                             reuseDirectoriesOf: daemon)
            let restartedAt = Date()
            try daemon.waitForLog("device ready", timeout: 20)
            // Both ports: "device ready" twice in the new daemon's log.
            let deadline = Date().addingTimeInterval(20)
            while daemon.output.components(separatedBy: "device ready").count < 3 && Date() < deadline {
                Thread.sleep(forTimeInterval: 0.05)
            }
            try frontEnd.waitForLinkUp(ports: [0, 1])
            try assertForwards(frontEnd, "round \(round) (daemon \(oldPID) killed, \(daemon.pid) started)")
            if testRun?.failureCount ?? 0 > 0 {
                print("[fault] restarted daemon's vrings of port a: \(api(daemon, "/v1/ports/a/vrings"))")
                print("[fault] restarted daemon's log:\n\(daemon.output.suffix(3000))")
                break
            }
            print("[fault] round \(round): daemon \(oldPID) SIGKILLed under traffic; \(daemon.pid) forwarding again "
                  + "\(String(format: "%.2f", Date().timeIntervalSince(restartedAt))) s after its start; fds \(daemon.openFileCount()), RSS \(daemon.residentKiB()) KiB")
        }
        print("[fault] daemon killed and restarted \(restarts) times under traffic in \(Int(Date().timeIntervalSince(started))) s")
        XCTAssertTrue(frontEnd.isRunning, "the front-end survived its back-end's crashes")
        XCTAssertEqual(daemon.stop(), 0, String(daemon.output.suffix(4000)))
    }

    // MARK: kernel port's interface deleted and re-created

    func testAfPacketInterfaceDeletedAndRecreatedComesBack() throws {
        try interfaceDeletedAndRecreated(kind: "af-packet", tag: "flt", subnet: 9)
    }

    /// The af-xdp port's program goes with the interface; the port attaches a new one to the
    /// re-created interface.
    func testAfXdpInterfaceDeletedAndRecreatedComesBack() throws {
        try interfaceDeletedAndRecreated(kind: "af-xdp", tag: "fxd", subnet: 44, prefix: "afxdp",
                                         kernelPort: #""type": "af-xdp", "mode": "native""#)
    }

    private func interfaceDeletedAndRecreated(kind: String, tag: String, subnet: Int, prefix: String = "vst",
                                              kernelPort: String = #""type": "af-packet""#, test: String = #function) throws {
        try skipUnlessIntegrationEnvironment(test)
        if let reason = KernelPeerRig.skipReason() { throw XCTSkip(reason) }
        let rig = try KernelPeerRig(tag: tag, subnet: subnet, prefix: prefix, kernelPort: kernelPort)
        defer { rig.tearDown() }
        let (network, daemon, frontEnd) = (rig.network, rig.daemon, rig.frontEnd)
        func ping(_ label: String) throws {
            let result = try rig.ping()
            XCTAssertEqual(result.status, 0, "\(label): ping through the switch failed:\n\(result.output)\n\(daemon.output.suffix(3000))")
        }
        try ping("before")
        let fdsBefore = daemon.openFileCount()
        for round in 1...3 {
            // `ip link del` of one veth end removes both; re-create the pair with the same names.
            try NetworkNamespaceFixture.ip(["link", "del", network.hostInterface])
            // Wait for this round's notice (the log keeps the earlier rounds').
            let seen = Date().addingTimeInterval(5)
            while occurrences("interface deleted", in: daemon.output) < round && Date() < seen { Thread.sleep(forTimeInterval: 0.05) }
            XCTAssertEqual(occurrences("interface deleted", in: daemon.output), round, "round \(round): the deletion was not noticed")
            let deletedAt = Date()
            try NetworkNamespaceFixture.ip(["link", "add", network.hostInterface, "type", "veth", "peer", "name", network.namespaceInterface])
            try NetworkNamespaceFixture.ip(["link", "set", network.namespaceInterface, "netns", network.namespace])
            try NetworkNamespaceFixture.ip(["link", "set", network.hostInterface, "up"])
            try network.inside(["ip", "link", "set", network.namespaceInterface, "up"])
            try network.assignAddress("10.200.\(subnet).1/24")
            let back = "interface is back"
            let deadline = Date().addingTimeInterval(5)
            while occurrences(back, in: daemon.output) < round && Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
            XCTAssertEqual(occurrences(back, in: daemon.output), round, "round \(round): the port did not come back:\n\(daemon.output.suffix(3000))")
            try ping("round \(round)")
            print("[fault] round \(round): \(kind) interface deleted and re-created; the port came back and pinged "
                  + "\(String(format: "%.1f", Date().timeIntervalSince(deletedAt))) s after re-creation began")
        }
        let fdsAfter = daemon.openFileCount()
        print("[fault] \(kind): daemon fds \(fdsBefore) -> \(fdsAfter)")
        XCTAssertEqual(fdsAfter, fdsBefore, "one kernel socket per port, also after re-creation")
        XCTAssertEqual(frontEnd.quit(), 0)
        XCTAssertEqual(daemon.stop(), 0, String(daemon.output.suffix(4000)))
    }

    // MARK: Memory table replaced while traffic flows

    /// A scripted front-end (FakeFrontend) transmits frames on port "f" while it replaces its
    /// memory table again and again, as QEMU does on memory hot-plug and DPDK virtio-user when
    /// its memory grows: the same pages (rings included) sent again, alternately with and
    /// without a second, new region. testpmd on port "a" must keep receiving, every posted
    /// frame must be consumed, and the daemon must end with the fds it started with.
    func testMemoryTableReplacedWhileTrafficFlows() throws {
        try skipUnlessIntegrationEnvironment()
        let replacements = environmentInt("FAULT_MEMORY_REPLACEMENTS", 200)
        let config = """
        {"ports": [
          {"name": "a", "type": "vhost-user", "socket": {"path": "a.sock"}},
          {"name": "f", "type": "vhost-user", "socket": {"path": "f.sock"}}
        ]}
        """
        let daemon = try SwitchDaemonProcess(config: config, extraArguments: ["--pmd-cpus", "1", "--log-level", "warning"])
        defer { daemon.stop() }
        try daemon.waitForFile(daemon.socketPath("a.sock"))
        try daemon.waitForFile(daemon.socketPath("f.sock"))
        let receiver = try Testpmd.frontEnd(sockets: [daemon.socketPath("a.sock")], cpu: 0, forwardMode: "rxonly", burst: 32)
        defer { receiver.quit() }
        try receiver.waitForLinkUp(ports: [0])
        try receiver.start()
        Thread.sleep(forTimeInterval: 0.3)
        let fdsBefore = daemon.openFileCount(), rssBefore = daemon.residentKiB()

        let frontend = try FakeFrontend.connect(path: daemon.socketPath("f.sock"))
        let memory = try FakeFrontendMemory()
        let features = try XCTUnwrap(frontend.request(.getFeatures)?.u64) & ~(UInt64(1) << 26) & ~(UInt64(1) << 34)  // not LOG_ALL, not RING_PACKED (split rings here)
        XCTAssertTrue(try frontend.negotiate(features: features, memory: memory))
        let kicks = [try EventFD(), try EventFD()]
        for ring in 0..<2 {
            XCTAssertTrue(try frontend.setUpRing(ring, memory: memory, kick: kicks[ring].descriptor, call: nil))
            XCTAssertTrue(try frontend.enableRing(ring))
        }
        var sent = 0
        var availIndex: UInt16 = 0
        let transmitRing = memory.ring(1)
        func transmit(_ count: Int) {
            // Ring 1 (guest transmit): descriptors at 0x4000, avail 0x5000; frames at 0x10000.
            for _ in 0..<count {
                let slot = Int(availIndex % 256)
                let buffer = UInt64(0x10000 + slot * 128)
                let frame: [UInt8] = [UInt8](repeating: 0, count: 12)
                    + [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0xfa, 0, 0, 0, 1, 0x08, 0x00] + [UInt8](repeating: 0x42, count: 50)
                memory.fixture.write(frame, at: buffer)
                transmitRing.writeDescriptor(slot, address: buffer, length: UInt32(frame.count))
                transmitRing.writeAvailSlot(availIndex, head: UInt16(slot))
                availIndex &+= 1
            }
            transmitRing.setAvailIndex(availIndex)
            kicks[1].signal()
            sent += count
        }
        let started = Date()
        var refused = 0
        for round in 1...replacements {
            transmit(16)
            // Wait until the switch consumed what was posted (used.idx caught up): no more
            // than the ring's worth in flight, so nothing is dropped for lack of descriptors.
            let deadline = Date().addingTimeInterval(2)
            while memory.mapping.base.load(fromByteOffset: 0x6002, as: UInt16.self) != availIndex && Date() < deadline { usleep(200) }
            // Post more, then replace the table while they are in flight.
            transmit(16)
            let ack: UInt64?
            if round % 2 == 1 {
                // Memory grew: a new region after the first (a new memfd each time).
                let extra = try FakeFrontendMemory(size: 1 << 20, guestPhysicalAddress: memory.size,
                                                   userspaceAddress: memory.userspaceAddress + memory.size)
                ack = try frontend.acked(.setMemTable, FakeFrontend.memoryTable([memory.descriptor, extra.descriptor]),
                                         fds: [memory.fd, extra.fd])
            } else {
                ack = try frontend.acked(.setMemTable, FakeFrontend.memoryTable([memory.descriptor]), fds: [memory.fd])
            }
            if ack != 0 { refused += 1 }
            if round % 50 == 0 { XCTAssertTrue(daemon.isRunning, "round \(round): the daemon died") }
        }
        let deadline = Date().addingTimeInterval(3)
        while memory.mapping.base.load(fromByteOffset: 0x6002, as: UInt16.self) != availIndex && Date() < deadline { usleep(200) }
        // Every frame is accounted for by the switch: taken from f's transmit ring, then either
        // delivered to a or counted as a drop there (testpmd's rxonly may fall behind on a busy
        // machine: drops_no_buffers, not a loss across the replacements).
        func counters(_ port: String) -> [String: Any] {
            let text = api(daemon, "/v1/ports/\(port)/stats")
            return (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] ?? [:]
        }
        func value(_ object: [String: Any], _ side: String, _ key: String) -> Int { ((object[side] as? [String: Any])?[key] as? Int) ?? -1 }
        var a = counters("a"), f = counters("f")
        let settle = Date().addingTimeInterval(5)
        while value(a, "tx", "packets") + value(a, "tx", "drops_no_buffers") < sent && Date() < settle {
            Thread.sleep(forTimeInterval: 0.05)
            a = counters("a"); f = counters("f")
        }
        let delivered = value(a, "tx", "packets"), dropped = value(a, "tx", "drops_no_buffers")
        _ = try? receiver.waitForPortStats(timeout: 5) { $0.first.map { $0.rxPackets >= UInt64(max(0, delivered)) } ?? false }
        let stats = try receiver.portStats()
        frontend.close()
        Thread.sleep(forTimeInterval: 0.5)
        let fdsAfter = daemon.openFileCount(), rssAfter = daemon.residentKiB()
        print("[fault] memory table replaced \(replacements) times while transmitting \(sent) frames in "
              + "\(String(format: "%.1f", Date().timeIntervalSince(started))) s; switch took \(value(f, "rx", "packets")), delivered \(delivered) "
              + "(+\(dropped) dropped for lack of receive buffers); testpmd received \(stats[0].rxPackets); "
              + "refused tables \(refused); daemon fds \(fdsBefore) -> \(fdsAfter), RSS \(rssBefore) -> \(rssAfter) KiB")
        XCTAssertEqual(refused, 0, "a valid replacement table was refused")
        XCTAssertEqual(memory.mapping.base.load(fromByteOffset: 0x6002, as: UInt16.self), availIndex, "the switch stopped consuming after a replacement")
        XCTAssertEqual(value(f, "rx", "packets"), sent, "frames posted on f not taken across table replacements")
        XCTAssertEqual(delivered + dropped, sent, "frames lost between f and a")
        XCTAssertEqual(stats[0].rxPackets, UInt64(max(0, delivered)), "testpmd did not get what the switch delivered")
        XCTAssertEqual(fdsAfter, fdsBefore, "the daemon's fd count changed")
        XCTAssertLessThan(rssAfter - rssBefore, 16 * 1024, "the daemon's RSS grew by more than 16 MiB")
        XCTAssertEqual(receiver.quit(), 0)
        XCTAssertEqual(daemon.stop(), 0, String(daemon.output.suffix(4000)))
    }
}
