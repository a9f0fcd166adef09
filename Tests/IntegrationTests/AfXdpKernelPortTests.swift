// af-xdp ports in the real daemon: a namespace behind a veth whose outer end is an af-xdp
// port in native mode (veth has native XDP), and dpdk-testpmd in icmpecho mode on a
// vhost-user port (KernelPeerRig). Pings cross the switch both ways and the port's kernel
// counters move; attach failures are clear API errors that leave no program behind.
import Foundation
import TestSupport
import XCTest

final class AfXdpKernelPortTests: XCTestCase {
    static let nativePort = #""type": "af-xdp", "queue": 0, "mode": "native""#

    func testNamespacePingsVirtioUserFrontEndThroughNativeAfXdpPort() throws {
        if let reason = KernelPeerRig.skipReason() { throw XCTSkip(reason) }
        let rig = try KernelPeerRig(tag: "xp", subnet: 41, prefix: "afxdp", kernelPort: Self.nativePort)
        defer { rig.tearDown() }
        XCTAssertTrue(try Self.xdpAttached(rig.network.hostInterface), "no XDP program on \(rig.network.hostInterface)")
        let api = SwitchAPIClient(rig.daemon)
        let port = try api.expect("GET", "/v1/ports/kernel", status: [200]).object
        XCTAssertEqual(port["type"] as? String, "af-xdp")
        XCTAssertEqual(port["mode"] as? String, "native")
        XCTAssertEqual(port["queue"] as? Int, 0)
        XCTAssertEqual(port["interface"] as? String, rig.network.hostInterface)
        XCTAssertTrue(rig.daemon.output.contains("xdp_mode=native"), rig.daemon.output)

        let ping = try rig.ping(count: 10)
        print("[af-xdp] \(ping.output.split(separator: "\n").suffix(2).joined(separator: " | "))")
        XCTAssertEqual(ping.status, 0, "ping through the af-xdp port failed:\n\(ping.output)\n\(rig.daemon.output)")
        XCTAssertTrue(ping.output.contains("10 received"), ping.output)

        let stats = try api.expect("GET", "/v1/ports/kernel/stats", status: [200]).object
        let kernel = stats["kernel"] as? [String: Any] ?? [:]
        XCTAssertGreaterThanOrEqual(kernel["rx_packets"] as? Int ?? 0, 10, "\(stats)")
        XCTAssertGreaterThanOrEqual(kernel["tx_packets"] as? Int ?? 0, 10, "\(stats)")
        XCTAssertGreaterThanOrEqual(kernel["rx_bytes"] as? Int ?? 0, 980, "\(stats)")
        XCTAssertEqual(kernel["tx_drops_ring_full"] as? Int, 0, "\(stats)")
        let metrics = try api.expect("GET", "/metrics", status: [200]).body
        XCTAssertTrue(metrics.contains(#"vhost_switch_port_packets_total{port="kernel",direction="rx"}"#), metrics)

        // Deleting the port detaches the program.
        try api.expect("DELETE", "/v1/ports/kernel", status: [204])
        XCTAssertFalse(try Self.xdpAttached(rig.network.hostInterface), "the program outlived its port")
        XCTAssertEqual(rig.frontEnd.quit(), 0)
        XCTAssertEqual(rig.daemon.stop(), 0, rig.daemon.output)
    }

    func testAttachFailuresAreClearErrorsAndLeaveNothingBehind() throws {
        if let reason = KernelPeerRig.skipReason() { throw XCTSkip(reason) }
        let network = try NetworkNamespaceFixture(tag: "xf", prefix: "afxdp")
        defer { network.destroy() }
        let daemon = try SwitchDaemonProcess(config: nil)
        defer { daemon.stop() }
        try daemon.waitUntilHealthy()
        let api = SwitchAPIClient(daemon)
        func create(_ fields: String) throws -> SwitchAPIClient.Reply {
            try api.request("POST", "/v1/ports", body: #"{"name": "x", "type": "af-xdp", "# + fields + "}")
        }

        let missing = try create(#""interface": "afxdp-none0""#)
        XCTAssertEqual(missing.status, 400, "\(missing)")
        XCTAssertTrue(missing.body.contains("invalid_port") && missing.body.contains("no interface named afxdp-none0"), missing.body)

        // A veth has one queue: queue 3 cannot be bound, after the program was attached.
        let queue = try create(#""interface": "\#(network.hostInterface)", "queue": 3, "mode": "native""#)
        XCTAssertEqual(queue.status, 400, "\(queue)")
        XCTAssertTrue(queue.body.contains("has no queue 3"), queue.body)
        XCTAssertFalse(try Self.xdpAttached(network.hostInterface), "a failed create left its program attached")

        let badMode = try create(#""interface": "\#(network.hostInterface)", "mode": "offload""#)
        XCTAssertEqual(badMode.status, 400, "\(badMode)")
        XCTAssertTrue(badMode.body.contains(#"mode must be \"native\", \"generic\" or \"auto\""#), badMode.body)
        XCTAssertEqual(try api.expect("GET", "/v1/ports", status: [200]).body.contains(#""name":"x""#), false)

        // An interface without native XDP (loopback, in a daemon inside the namespace).
        try network.inside(["ip", "link", "set", "lo", "mtu", "1500"])
        let inner = try SwitchDaemonProcess(networkNamespace: network.namespace)
        defer { inner.stop() }
        try inner.start()
        try inner.waitUntilHealthy()
        let native = try SwitchAPIClient(inner).request("POST", "/v1/ports", body: #"{"name": "lo", "type": "af-xdp", "interface": "lo", "mode": "native"}"#)
        XCTAssertEqual(native.status, 400, "\(native)")
        XCTAssertTrue(native.body.contains("cannot attach XDP in native mode to lo"), native.body)

        // With the failures gone, the same interface takes a port, and a second one is refused.
        let created = try create(#""interface": "\#(network.hostInterface)", "mode": "native""#)
        XCTAssertEqual(created.status, 201, "\(created)")
        let second = try api.request("POST", "/v1/ports", body: #"{"name": "y", "type": "af-packet", "interface": "\#(network.hostInterface)"}"#)
        XCTAssertEqual(second.status, 409, "\(second)")
        XCTAssertEqual(daemon.stop(), 0, daemon.output)
        XCTAssertFalse(try Self.xdpAttached(network.hostInterface), "the program outlived the daemon")
    }

    /// `ip -d link show` of `interface` (host namespace) mentions an attached XDP program.
    static func xdpAttached(_ interface: String) throws -> Bool {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
        process.arguments = ["-d", "link", "show", "dev", interface]
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return text.contains("prog/xdp")
    }
}
