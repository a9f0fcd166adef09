// AF_PACKET fanout (issue 21): with two poll threads an af-packet port opens two packet
// sockets in one PACKET_FANOUT_HASH group. Frames of many flows sent from a namespace must
// arrive through both sockets (each socket's counters in GET /v1/ports/{name}/stats), and
// reach a DPDK guest exactly once each: nothing duplicated, nothing lost (a frame the guest
// had no buffer for is counted as such).
import Foundation
import TestSupport
import XCTest

final class KernelPortFanoutTests: XCTestCase {
    private static let flows = 32
    private static let framesPerFlow = 25
    private static let guestMAC = "02:00:00:00:77:02"

    /// Sends `flows` x `framesPerFlow` UDP frames out of `interface` with a raw socket: one
    /// flow per source port, to the guest's MAC, nothing else (the namespace's IPv6 is off).
    /// A round of one frame per flow, then a pause: the veth's backlog (1000 frames per CPU)
    /// must not overflow on a loaded machine, or the kernel drops before the switch sees it.
    private static let sender = """
        import socket, struct, sys, time
        interface, flows, per_flow, destination = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
        s.bind((interface, 0))
        dst = bytes.fromhex(destination.replace(":", ""))
        src = bytes.fromhex("020000007701")
        for i in range(per_flow):
            for flow in range(flows):
                udp = struct.pack("!HHHH", 10000 + flow, 9, 8 + 18, 0) + bytes(18)
                ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0,
                                 bytes([10, 201, 0, 1]), bytes([10, 201, 0, 2]))
                s.send(dst + src + b"\\x08\\x00" + ip + udp)
            time.sleep(0.005)
        """

    func testTwoPollThreadsReceiveThroughBothSocketsExactlyOnce() throws {
        if let reason = KernelPeerRig.skipReason() { throw XCTSkip(reason) }
        let network = try NetworkNamespaceFixture(tag: "fan", prefix: "multiqueue")
        defer { network.destroy() }
        try network.inside(["sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1"])
        _ = try NetworkNamespaceFixture.run(["/usr/sbin/sysctl", "-q", "-w", "net.ipv6.conf.\(network.hostInterface).disable_ipv6=1"], check: false)
        let config = """
        {"ports": [
          {"name": "vm", "type": "vhost-user", "socket": {"path": "vm.sock"}},
          {"name": "kernel", "type": "af-packet", "interface": "\(network.hostInterface)"}
        ]}
        """
        let daemon = try SwitchDaemonProcess(config: config, extraArguments: ["--pmd-threads", "2"])
        defer { daemon.stop() }
        try daemon.waitForFile(daemon.socketPath("vm.sock"))
        let frontEnd = try Testpmd.frontEnd(sockets: [daemon.socketPath("vm.sock")], macs: [Self.guestMAC], cpu: 0,
                                            forwardMode: "rxonly", burst: 32)
        defer { frontEnd.quit() }
        try frontEnd.waitForLinkUp(ports: [0])
        try daemon.waitForLog("device ready")
        try frontEnd.start()

        let stats = try daemon.api.expect("GET", "/v1/stats", status: [200]).object
        let kernelQueues = ((stats["poll_threads"] as? [[String: Any]]) ?? []).flatMap { thread in
            ((thread["queues"] as? [[String: Any]]) ?? []).filter { $0["port"] as? String == "kernel" }.map { _ in thread["index"] as? Int ?? -1 }
        }
        XCTAssertEqual(kernelQueues.sorted(), [0, 1], "one socket per poll thread, each on its own thread: \(stats)")

        let script = NSTemporaryDirectory() + "fanout-sender-\(getpid()).py"
        try Self.sender.write(toFile: script, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: script) }
        let total = Self.flows * Self.framesPerFlow
        let sentBefore = try network.counter("tx_packets")
        try network.inside(["python3", script, network.namespaceInterface, "\(Self.flows)", "\(Self.framesPerFlow)", Self.guestMAC])

        // Exactly once: every frame reached the guest or was dropped for want of its buffers
        // (testpmd may fall behind on a loaded machine), and the count stays there.
        let guestDrops = { () throws -> Int in
            let guest = try daemon.api.expect("GET", "/v1/ports/vm/stats", status: [200]).object
            return ((guest["switch"] as? [String: Any])?["drops"] as? [String: Any])?["no_guest_buffers"] as? Int ?? 0
        }
        _ = try? frontEnd.waitForPortStats { stats in
            Int(stats.first?.rxPackets ?? 0) + ((try? guestDrops()) ?? 0) >= total
        }
        Thread.sleep(forTimeInterval: 0.3)
        let port = try daemon.api.expect("GET", "/v1/ports/kernel/stats", status: [200]).object
        let delivered = Int(try frontEnd.portStats().first?.rxPackets ?? 0)
        let dropped = try guestDrops()
        XCTAssertEqual(delivered + dropped, total, "guest received \(delivered), dropped for want of buffers \(dropped); kernel port: \(port)")
        XCTAssertGreaterThan(delivered, total / 2, "most frames reach the guest")
        XCTAssertEqual(try network.counter("tx_packets") - sentBefore, UInt64(total), "the namespace sent just these")
        let kernel = try XCTUnwrap(port["kernel"] as? [String: Any], "\(port)")
        let sockets = try XCTUnwrap(kernel["sockets"] as? [[String: Any]], "\(kernel)")
        let perSocket = sockets.map { $0["rx_packets"] as? Int ?? 0 }
        XCTAssertEqual(perSocket.count, 2, "\(kernel)")
        XCTAssertTrue(perSocket.allSatisfy { $0 > 0 }, "both sockets received: \(perSocket)")
        XCTAssertEqual(perSocket.reduce(0, +), total, "every frame through exactly one socket: \(perSocket)")
        XCTAssertEqual(kernel["rx_packets"] as? Int, total, "the port's count is the sockets' sum")
        // The sockets' receive bursts are counted as rx-queue load (what balancing weighs).
        let metrics = try daemon.api.expect("GET", "/metrics", status: [200]).body
        let series = #"vhost_switch_port_busy_cycles_total{port="kernel",direction="rx"} "#
        let line = metrics.split(separator: "\n").first { $0.hasPrefix(series) }
        XCTAssertGreaterThan(line.flatMap { UInt64($0.dropFirst(series.count)) } ?? 0, 0, "\(line ?? "no \(series)")")
    }
}
