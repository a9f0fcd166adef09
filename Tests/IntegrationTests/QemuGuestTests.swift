// A real Linux guest (Debian kernel, virtio_net driver, busybox initramfs) in QEMU under TCG
// on a vhost-user port of the real daemon; a network namespace behind an af-packet port.
// Packets flow through the switch both ways: the guest pings the namespace and the
// namespace pings the guest. See scripts/guest/ for the guest image.
import Foundation
import TestSupport
import XCTest

final class QemuGuestTests: XCTestCase {
    /// Server-mode port (the switch listens, QEMU connects).
    func testGuestAndNamespacePingEachOtherThroughSwitch() throws {
        try runPingTest(switchMode: "server", subnet: 8)
    }

    /// Client-mode port (QEMU listens with server=on, the switch connects).
    func testGuestAndNamespacePingEachOtherWithSwitchInClientMode() throws {
        try runPingTest(switchMode: "client", subnet: 10)
    }

    /// The Linux driver's packed virtqueue (QEMU packed=on): RING_PACKED negotiated, the
    /// switch's vrings say so, and pings flow both ways.
    func testGuestWithPackedRingPingsThroughSwitch() throws {
        try runPingTest(switchMode: "server", subnet: 12, nicProperties: [("packed", "on")])
    }

    private func runPingTest(switchMode: String, subnet: Int, nicProperties: [(String, String)] = [], function: String = #function) throws {
        if let reason = NetworkNamespaceFixture.skipReason() {
            print("SKIP \(function): \(reason)")
            throw XCTSkip(reason)
        }
        if let reason = QemuGuest.printedSkipReason(function) { throw XCTSkip(reason) }
        let image = try QemuGuest.image()
        let network = try NetworkNamespaceFixture(tag: "qg")
        defer { network.destroy() }
        let namespaceAddress = "10.200.\(subnet).1", guestAddress = "10.200.\(subnet).2"
        try network.assignAddress(namespaceAddress + "/24")
        let mac = "02:00:00:00:\(String(format: "%02x", subnet)):02"
        let config = """
        {"ports": [
          {"name": "vm", "type": "vhost-user", "socket": {"path": "vm.sock", "mode": "\(switchMode)"}},
          {"name": "kernel", "type": "af-packet", "interface": "\(network.hostInterface)"}
        ]}
        """
        let daemon = try SwitchDaemonProcess(config: config, extraArguments: ["--log-level", "debug"])
        defer { daemon.stop() }
        let socket = daemon.socketPath("vm.sock")
        if switchMode == "server" { try daemon.waitForFile(socket) }
        var configuration = QemuGuest.Configuration(name: "ping-\(switchMode)", socketPath: socket,
                                                    socketMode: switchMode == "server" ? .qemuConnects : .qemuListens, mac: mac,
                                                    guestParameters: [("ip", guestAddress + "/24"), ("peer", namespaceAddress),
                                                                      ("mode", "ping"), ("count", "20"), ("interval", "0.1")])
        configuration.nicProperties = nicProperties
        let guest = try QemuGuest(configuration, image: image)
        defer { guest.terminate() }
        let failureContext = { "\(guest.describe())\n--- switch ---\n\(daemon.output.suffix(6000))" }

        let bootSeconds = try guest.waitForSerial("VS-READY", timeout: 180)
        print("[qemu] guest \(guest.configuration.name) (kernel \(image.kernelVersion), \(guest.accelerator.rawValue)) ready \(String(format: "%.1f", bootSeconds)) s after QEMU started")
        try daemon.waitForLog("device ready", timeout: 30)
        XCTAssertTrue(guest.testLines.contains { $0.hasPrefix("VS-NET mac=\(mac)") }, "eth0 has the MAC QEMU gave it:\n\(failureContext())")

        // The namespace pings the guest while the guest pings the namespace.
        let ping = try network.inside(["ping", "-c", "10", "-i", "0.1", "-W", "2", guestAddress], check: false)
        print("[qemu] namespace -> guest: \(ping.output.split(separator: "\n").suffix(2).joined(separator: " | "))")
        XCTAssertEqual(ping.status, 0, "namespace could not ping the guest:\n\(ping.output)\n\(failureContext())")
        XCTAssertTrue(ping.output.contains("10 received"), ping.output)

        try guest.waitForSerial("VS-PING-DONE", timeout: 60)
        let guestSummary = guest.testLines.first { $0.contains("packets transmitted") } ?? "(none)"
        print("[qemu] guest -> namespace: \(guestSummary)")
        XCTAssertTrue(guestSummary.contains("20 packets received"), "guest ping lost packets:\n\(failureContext())")

        if nicProperties.contains(where: { $0 == ("packed", "on") }) {
            let rings = try SwitchEventHistory.getJSON(apiSocket: daemon.apiSocketPath, path: "/v1/ports/vm/vrings")
            let layouts = (((rings as? [String: Any])?["vrings"] as? [[String: Any]]) ?? []).compactMap { $0["layout"] as? String }
            XCTAssertFalse(layouts.isEmpty)
            XCTAssertEqual(Set(layouts), ["packed"], "the guest's rings are packed: \(rings)")
        }

        // Both MACs were learned on the right ports.
        let fdb = try SwitchEventHistory.getJSON(apiSocket: daemon.apiSocketPath, path: "/v1/fdb")
        let entries = ((fdb as? [String: Any])?["entries"] as? [[String: Any]]) ?? []
        let guestEntry = entries.first { ($0["mac"] as? String)?.lowercased() == mac }
        XCTAssertEqual(guestEntry?["port"] as? String, "vm", "guest MAC learned on port vm: \(entries)")

        let events = try SwitchEventHistory.fetch(apiSocket: daemon.apiSocketPath)
        XCTAssertTrue(events.contains { $0.port == "vm" && $0.type == "device.ready" }, "\(events)")
        let warnings = daemon.output.split(separator: "\n").filter { $0.contains(" warning ") || $0.contains(" error ") || $0.contains(" critical ") }
        if !warnings.isEmpty { print("[qemu] switch warnings/errors:\n" + warnings.joined(separator: "\n")) }

        guest.terminate()
        try daemon.waitForLog("device session ended", timeout: 15)
        XCTAssertEqual(daemon.stop(), 0, daemon.output)
    }
}
