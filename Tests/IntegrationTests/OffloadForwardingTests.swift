// Checksum offload between two dpdk-testpmd virtio-user front-ends through vhost-switchd,
// for each ring layout (split, packed, IN_ORDER, mergeable buffers on and off). Two testpmd
// instances (one port each) run the `csum` engine with UDP checksum offload on transmit, so
// every frame they forward carries a virtio-net header with NEEDS_CSUM. The first frames
// come from a network namespace behind an af-packet port (UDP with checksums: testpmd's own
// tx_first frames have none, and the csum engine leaves a zero UDP checksum alone), sent to
// testpmd a's MAC; from then on they bounce between a and b. Port a negotiated GUEST_CSUM
// (testpmd asks for receive checksum offload), so its frames keep their header; port b's
// mask takes GUEST_CSUM away, so the switch completes every checksum for it. Both must keep
// flowing with no frame dropped for its header.
import Foundation
import TestSupport
import XCTest

final class OffloadForwardingTests: XCTestCase {
    /// RTE_ETH_TX_OFFLOAD_UDP_CKSUM | TCP_CKSUM and the same receive offloads.
    static let checksumOffloads = "0xc"
    static let macs = ["02:00:00:00:0c:0a", "02:00:00:00:0c:0b"]

    func testSplitRing() throws { try bounce(options: "") }
    func testSplitRingInOrderWithoutMergeableBuffers() throws { try bounce(options: "in_order=1,mrg_rxbuf=0") }
    func testPackedRing() throws { try bounce(options: "packed_vq=1") }
    func testPackedRingInOrderWithMergeableBuffers() throws { try bounce(options: "packed_vq=1,in_order=1,mrg_rxbuf=1") }

    private func bounce(options: String, function: String = #function) throws {
        if let reason = IntegrationEnvironment.printedSkipReason(function) { throw XCTSkip(reason) }
        if let reason = NetworkNamespaceFixture.skipReason() {
            print("SKIP \(function): \(reason)")
            throw XCTSkip(reason)
        }
        let network = try NetworkNamespaceFixture(tag: "of")
        defer { network.destroy() }
        try network.assignAddress("10.200.30.1/24")
        let config = """
            {"ports": [
              {"name": "kernel", "type": "af-packet", "interface": "\(network.hostInterface)"},
              {"name": "a", "type": "vhost-user", "socket": {"path": "a.sock"}},
              {"name": "b", "type": "vhost-user", "socket": {"path": "b.sock"},
               "features": {"disable": ["guest_csum", "guest_tso4", "guest_tso6", "guest_ecn"]}}
            ]}
            """
        let daemon = try SwitchDaemonProcess(config: config, extraArguments: ["--pmd-cpus", "1"])
        defer { daemon.stop() }
        let api = SwitchAPIClient(daemon)
        try daemon.waitUntilHealthy()
        let sockets = [daemon.socketPath("a.sock"), daemon.socketPath("b.sock")]
        for socket in sockets { try daemon.waitForFile(socket) }

        let offloads = ["--tx-offloads=\(Self.checksumOffloads)"]
        let a = try Testpmd.frontEnd(sockets: [sockets[0]], macs: [Self.macs[0]], peerMACs: [Self.macs[1]], cpu: 0, forwardMode: "csum",
                                     extraAppArguments: offloads + ["--rx-offloads=\(Self.checksumOffloads)"], vdevOptions: [options])
        defer { a.quit() }
        let b = try Testpmd.frontEnd(sockets: [sockets[1]], macs: [Self.macs[1]], peerMACs: [Self.macs[0]], cpu: 0, forwardMode: "csum",
                                     extraAppArguments: offloads, vdevOptions: [options])
        defer { b.quit() }
        try a.waitForLinkUp(ports: [0])
        try b.waitForLinkUp(ports: [0])

        let negotiatedA = try api.featureNames(port: "a", set: "negotiated") ?? []
        let negotiatedB = try api.featureNames(port: "b", set: "negotiated") ?? []
        XCTAssertTrue(negotiatedA.contains("csum") && negotiatedA.contains("guest_csum"), "port a: \(negotiatedA)")
        XCTAssertTrue(negotiatedB.contains("csum") && !negotiatedB.contains("guest_csum"), "port b: \(negotiatedB)")
        XCTAssertEqual(negotiatedA.contains("ring_packed"), options.contains("packed_vq=1"), "\(negotiatedA)")

        try b.start()
        try a.start()
        // Frames with UDP checksums, to testpmd a's MAC: the csum engine takes it from there.
        try network.inside(["ip", "neigh", "replace", "10.200.30.2", "lladdr", Self.macs[0], "dev", network.namespaceInterface])
        try network.inside(["python3", "-c", "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
                            + "for i in range(64): s.sendto(bytes(200), ('10.200.30.2', 9))"])
        let wanted: UInt64 = 2000
        for testpmd in [a, b] {
            try testpmd.waitForPortStats(timeout: 20) { stats in stats.first.map { $0.rxPackets >= wanted && $0.txPackets >= wanted } ?? false }
        }
        let summaries = try [a, b].map { try $0.command("stop") }
        for (name, summary) in zip(["a", "b"], summaries) {
            // The csum engine counts frames whose checksum the receive side flagged bad.
            XCTAssertTrue(summary.contains("Bad-l4csum:"), "testpmd \(name) printed no checksum counts:\n\(summary)")
            XCTAssertFalse(summary.range(of: #"Bad-l4csum: [1-9]"#, options: .regularExpression) != nil, "testpmd \(name):\n\(summary)")
        }

        let statsA = try api.expect("GET", "/v1/ports/a/stats", status: [200]).object
        let statsB = try api.expect("GET", "/v1/ports/b/stats", status: [200]).object
        func completed(_ stats: [String: Any]) -> Int {
            ((stats["switch"] as? [String: Any])?["tx_offloads_done"] as? [String: Any])?["checksums_completed"] as? Int ?? -1
        }
        func count(_ stats: [String: Any], _ direction: String, _ key: String) -> Int {
            (stats[direction] as? [String: Any])?[key] as? Int ?? -1
        }
        print("[offload/\(options.isEmpty ? "split" : options)] frames to a \(count(statsA, "tx", "packets")) (headers passed), "
              + "to b \(count(statsB, "tx", "packets")) (checksums completed \(completed(statsB)))")
        XCTAssertEqual(completed(statsA), 0, "port a takes NEEDS_CSUM headers as they are")
        XCTAssertGreaterThanOrEqual(completed(statsB), Int(wanted), "the switch completed the checksums for port b")
        for stats in [statsA, statsB] {
            XCTAssertEqual(count(stats, "rx", "drops_malformed_header"), 0, "\(stats)")
            XCTAssertEqual(count(stats, "tx", "drops_unsupported_offload"), 0, "\(stats)")
            let drops = (stats["switch"] as? [String: Any])?["drops"] as? [String: Any] ?? [:]
            XCTAssertEqual(drops["offload_malformed"] as? Int, 0, "\(stats)")
        }
    }
}
