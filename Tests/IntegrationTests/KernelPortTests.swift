// A vhost-user front-end and a kernel network namespace in one L2 domain: dpdk-testpmd in
// icmpecho mode answers ARP and ping on a vhost-user port; the namespace sits behind a veth
// whose host end is an af-packet port of the switch.
import Foundation
import TestSupport
import XCTest

final class KernelPortTests: XCTestCase {
    func testNamespacePingsVirtioUserFrontEndThroughAfPacketPort() throws {
        if let reason = KernelPeerRig.skipReason() { throw XCTSkip(reason) }
        let rig = try KernelPeerRig(tag: "png", subnet: 7)
        defer { rig.tearDown() }
        let ping = try rig.ping(count: 5)
        print("[kernel port] \(ping.output.split(separator: "\n").suffix(2).joined(separator: " | "))")
        XCTAssertEqual(ping.status, 0, "ping through the switch failed:\n\(ping.output)\n\(rig.daemon.output)")
        XCTAssertTrue(ping.output.contains("5 received"), ping.output)
        let neighbours = try rig.network.inside(["ip", "neigh", "show", rig.guestAddress])
        XCTAssertTrue(neighbours.output.contains(rig.frontEndMAC), "ARP resolved to the front-end's MAC: \(neighbours.output)")
        XCTAssertEqual(rig.frontEnd.quit(), 0)
        XCTAssertEqual(rig.daemon.stop(), 0, rig.daemon.output)
    }
}
