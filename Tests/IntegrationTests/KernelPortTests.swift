// A vhost-user front-end and a kernel network namespace in one L2 domain: dpdk-testpmd in
// icmpecho mode answers ARP and ping on a vhost-user port; the namespace sits behind a veth
// whose host end is an af-packet port of the switch.
import Foundation
import TestSupport
import XCTest

final class KernelPortTests: XCTestCase {
    func testNamespacePingsVirtioUserFrontEndThroughAfPacketPort() throws {
        if let reason = IntegrationEnvironment.printedSkipReason() { throw XCTSkip(reason) }
        if let reason = NetworkNamespaceFixture.skipReason() {
            print("[skip] \(#function): \(reason)")
            throw XCTSkip(reason)
        }
        let network = try NetworkNamespaceFixture(tag: "png")
        defer { network.destroy() }
        try network.assignAddress("10.200.7.1/24")
        let config = """
        {"ports": [
          {"name": "vm", "type": "vhost-user", "socket": {"path": "vm.sock"}},
          {"name": "kernel", "type": "af-packet", "interface": "\(network.hostInterface)"}
        ]}
        """
        let daemon = try SwitchDaemonProcess(config: config, extraArguments: ["--pmd-cpus", "1"])
        defer { daemon.stop() }
        try daemon.waitForFile(daemon.socketPath("vm.sock"))
        // icmpecho replies to ARP requests and ICMP echo requests for any address.
        let frontEnd = try Testpmd.frontEnd(sockets: [daemon.socketPath("vm.sock")], macs: ["02:00:00:00:07:02"],
                                            cpu: 0, forwardMode: "icmpecho", burst: 32)
        defer { frontEnd.quit() }
        try frontEnd.waitForLinkUp(ports: [0])
        try daemon.waitForLog("device ready")
        try frontEnd.start()

        let ping = try network.inside(["ping", "-c", "5", "-i", "0.2", "-W", "2", "10.200.7.2"], check: false)
        print("[kernel port] \(ping.output.split(separator: "\n").suffix(2).joined(separator: " | "))")
        XCTAssertEqual(ping.status, 0, "ping through the switch failed:\n\(ping.output)\n\(daemon.output)")
        XCTAssertTrue(ping.output.contains("5 received"), ping.output)
        let neighbours = try network.inside(["ip", "neigh", "show", "10.200.7.2"])
        XCTAssertTrue(neighbours.output.contains("02:00:00:00:07:02"), "ARP resolved to the front-end's MAC: \(neighbours.output)")
        XCTAssertEqual(frontEnd.quit(), 0)
        XCTAssertEqual(daemon.stop(), 0, daemon.output)
    }
}
