// TCP between a QEMU guest (vhost-user) and a network namespace (veth, af-packet port with
// PACKET_VNET_HDR), both directions, once with the guest's offloads negotiated and once with
// them all disabled on the port and the NIC (issue 9). The namespace's TCP hands the
// packet socket super-frames and partial checksums: a guest with the offloads takes them
// as they are, a guest without them gets segments with complete checksums from the switch.
// The guest's own super-frames go to the kernel with their vnet header. The namespace's TCP
// must count no checksum errors (the guest's side shows as a working stream: bad segments
// would be dropped), and the switch's counters must show which path was taken.
import Foundation
import TestSupport
import XCTest

final class GuestKernelOffloadTests: XCTestCase {
    static let offloadNames = ["csum", "guest_csum", "host_tso4", "host_tso6", "host_ecn", "host_ufo",
                               "guest_tso4", "guest_tso6", "guest_ecn", "guest_ufo"]
    static let seconds = 3

    func testTcpBetweenOffloadGuestAndNamespace() throws {
        try run(offloads: true, subnet: 23)
    }

    func testTcpBetweenPlainGuestAndNamespace() throws {
        try run(offloads: false, subnet: 24)
    }

    private func run(offloads: Bool, subnet: Int, function: String = #function) throws {
        if let reason = NetworkNamespaceFixture.skipReason() {
            print("SKIP \(function): \(reason)")
            throw XCTSkip(reason)
        }
        if let reason = QemuGuest.printedSkipReason(function) { throw XCTSkip(reason) }
        if let reason = QemuGuest.iperf3SkipReason() {
            print("SKIP \(function): \(reason)")
            throw XCTSkip(reason)
        }
        let image = try QemuGuest.image()
        guard image.hasIperf3 else { throw XCTSkip("the guest initramfs has no iperf3") }
        let network = try NetworkNamespaceFixture(tag: "ko")
        defer { network.destroy() }
        let namespaceAddress = "10.200.\(subnet).1", guestAddress = "10.200.\(subnet).2"
        try network.assignAddress(namespaceAddress + "/24")
        let disable = offloads ? "" : #", "features": {"disable": [\#(Self.offloadNames.map { "\"\($0)\"" }.joined(separator: ", "))]}"#
        let config = """
        {"ports": [
          {"name": "vm", "type": "vhost-user", "socket": {"path": "vm.sock"}\(disable)},
          {"name": "kernel", "type": "af-packet", "interface": "\(network.hostInterface)"}
        ]}
        """
        let daemon = try SwitchDaemonProcess(config: config, extraArguments: ["--log-level", "info", "--idle-polls", "50"])
        defer { daemon.stop() }
        let api = SwitchAPIClient(daemon)
        try daemon.waitUntilHealthy()
        let socket = daemon.socketPath("vm.sock")
        try daemon.waitForFile(socket)
        var configuration = QemuGuest.Configuration(name: "kernel-tcp-\(offloads ? "on" : "off")", socketPath: socket,
                                                    mac: "02:00:00:00:\(String(format: "%02x", subnet)):02",
                                                    guestParameters: [("ip", guestAddress + "/24"), ("mode", "iperf-server")])
        configuration.nicProperties = offloads ? [] : Self.offloadNames.map { ($0, "off") }
        configuration.tcgCpuModel = GuestThroughputTests.tcgCpuModel
        let guest = try QemuGuest(configuration, image: image)
        defer { guest.terminate() }
        let context = { "\(guest.describe())\n--- switch ---\n\(daemon.output.suffix(6000))" }
        _ = try guest.waitForSerial("VS-READY", timeout: 180)
        try daemon.waitForLog("device ready", timeout: 30)
        let negotiated = try api.featureNames(port: "vm", set: "negotiated") ?? []
        if offloads {
            XCTAssertTrue(["guest_csum", "guest_tso4", "host_tso4", "csum"].allSatisfy(negotiated.contains), "\(negotiated)")
        } else {
            XCTAssertEqual(negotiated.filter(Self.offloadNames.contains), [], "no offloads negotiated")
        }
        // Wait until the guest answers (ARP learned both ways) before streaming.
        _ = try network.inside(["ping", "-c", "3", "-i", "0.2", "-W", "5", guestAddress], check: false)

        let before = try network.inside(["nstat", "-az", "TcpInCsumErrors"], check: false).output
        var rates: [String] = []
        for reverse in [false, true] {
            var command = ["iperf3", "-c", guestAddress, "-t", String(Self.seconds), "-f", "m", "--connect-timeout", "5000"]
            if reverse { command.append("-R") }
            let result = try network.inside(command, check: false)
            let direction = reverse ? "guest -> namespace" : "namespace -> guest"
            XCTAssertEqual(result.status, 0, "\(direction): iperf3 failed:\n\(result.output)\n\(context())")
            let report = Iperf3Report(lines: result.output.split(separator: "\n").map(String.init))
            guard let receiver = report.receiver else {
                XCTFail("\(direction): no receiver summary:\n\(result.output)")
                continue
            }
            XCTAssertGreaterThan(receiver.bytes, 1_000_000, "\(direction) moved data: \(report)")
            rates.append("\(direction) \(String(format: "%.0f", receiver.megabitsPerSecond)) Mbit/s")
        }
        let csumErrors = try network.inside(["nstat", "-az", "TcpInCsumErrors"], check: false).output
        print("[kernel-tcp/\(offloads ? "on" : "off")] \(rates.joined(separator: ", ")); namespace TcpInCsumErrors before/after: "
              + "\(Self.counter(before)) / \(Self.counter(csumErrors))")
        XCTAssertEqual(Self.counter(csumErrors), Self.counter(before), "the namespace's TCP saw bad checksums")

        let stats = try api.expect("GET", "/v1/ports/vm/stats", status: [200]).object
        let fabric = stats["switch"] as? [String: Any] ?? [:]
        let done = fabric["tx_offloads_done"] as? [String: Any] ?? [:]
        let drops = fabric["drops"] as? [String: Any] ?? [:]
        let segmented = done["frames_segmented"] as? Int ?? -1
        let completed = done["checksums_completed"] as? Int ?? -1
        print("[kernel-tcp/\(offloads ? "on" : "off")] to the guest: frames segmented \(segmented), checksums completed \(completed), drops \(drops)")
        if offloads {
            XCTAssertEqual(segmented, 0, "the guest takes super-frames whole")
            XCTAssertEqual(completed, 0, "the guest takes partial checksums")
        } else {
            XCTAssertGreaterThan(segmented + completed, 0, "the switch resolved the kernel's offloads for the guest: \(stats)")
        }
        XCTAssertEqual(drops["offload_malformed"] as? Int, 0)
        XCTAssertEqual(daemon.stop(), 0, String(daemon.output.suffix(4000)))
    }

    /// The value of the one counter nstat printed (0 when it printed none).
    static func counter(_ output: String) -> Int {
        for line in output.split(separator: "\n") where line.hasPrefix("TcpInCsumErrors") {
            return Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") ?? 0
        }
        return 0
    }
}
