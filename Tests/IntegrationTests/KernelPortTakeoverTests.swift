// Live hand-over with kernel ports: the new process opens its own packet sockets, and an
// af-xdp port's XDP program moves with it (an interface takes one program: the old daemon
// detaches its own for the hand-over and attaches it again when the hand-over fails). A
// namespace pings dpdk-testpmd (icmpecho) on a vhost-user port across the kernel port
// (KernelPeerRig) before, after a failed and after a completed takeover.
import Foundation
import TestSupport
import XCTest

final class KernelPortTakeoverTests: XCTestCase {
    func testAfPacketPortAcrossTakeovers() throws {
        try checkTakeovers(kernelPort: #""type": "af-packet""#, tag: "tp", subnet: 44, xdp: false)
    }

    func testAfXdpPortAcrossTakeovers() throws {
        try checkTakeovers(kernelPort: #""type": "af-xdp", "queue": 0, "mode": "native""#, tag: "tx", subnet: 45, xdp: true)
    }

    private func checkTakeovers(kernelPort: String, tag: String, subnet: Int, xdp: Bool) throws {
        if let reason = KernelPeerRig.skipReason() ?? IntegrationEnvironment.printedDaemonSkipReason() { throw XCTSkip(reason) }
        let rig = try KernelPeerRig(tag: tag, subnet: subnet, prefix: "takeover", kernelPort: kernelPort)
        defer { rig.tearDown() }
        func pings(_ when: String, _ daemon: SwitchDaemonProcess) throws {
            let ping = try rig.ping(count: 5)
            XCTAssertEqual(ping.status, 0, "\(when): ping across the kernel port:\n\(ping.output)\n\(daemon.output.suffix(3000))")
        }
        func attached(_ daemon: SwitchDaemonProcess) throws -> String? {
            let port = try SwitchAPIClient(daemon).expect("GET", "/v1/ports/kernel", status: [200]).object
            return (port["xdp"] as? [String: Any])?["attached_mode"] as? String
        }
        try pings("before", rig.daemon)

        // The new process dies after it made its ports (its program attached, then gone with it).
        let doomed = try SwitchDaemonProcess.takingOver(from: rig.daemon, environment: ["VHOST_SWITCH_HANDOVER_CRASH_AT": "adopted"])
        XCTAssertNotEqual(doomed.waitForExit(timeout: 30), 0, doomed.output)
        XCTAssertTrue(rig.daemon.isRunning, rig.daemon.output)
        try pings("after a failed takeover", rig.daemon)
        if xdp {
            XCTAssertEqual(try attached(rig.daemon), "native", "the old daemon attached its program again")
            XCTAssertTrue(try NetworkNamespaceFixture.hasXDPProgram(rig.network.hostInterface))
        }

        let successor = try SwitchDaemonProcess.takingOver(from: rig.daemon)
        defer { successor.stop() }
        XCTAssertEqual(rig.daemon.waitForExit(timeout: 30), 0, "\(rig.daemon.output)\nnew:\n\(successor.output)")
        try successor.waitUntilHealthy()
        try pings("after the takeover", successor)
        if xdp {
            XCTAssertEqual(try attached(successor), "native", "the successor attached its program")
            XCTAssertTrue(try NetworkNamespaceFixture.hasXDPProgram(rig.network.hostInterface))
        }
        XCTAssertEqual(successor.stop(), 0, successor.output)
        if xdp { XCTAssertFalse(try NetworkNamespaceFixture.hasXDPProgram(rig.network.hostInterface), "the program outlived the daemon") }
    }
}
