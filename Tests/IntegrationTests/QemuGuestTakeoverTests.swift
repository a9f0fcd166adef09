// A QEMU guest (TCG) on a server-mode vhost-user port pings a network namespace behind an
// af-packet port every 10 ms while a new vhost-switchd takes over (`--takeover`): at most 5
// pings may be lost, QEMU must not reconnect, and the guest's device stays the same session.
import Foundation
import TestSupport
import XCTest

final class QemuGuestTakeoverTests: XCTestCase {
    static let pings = 500
    static let maxLost = 5

    func testGuestPingingEvery10msLosesAtMostFivePingsAcrossATakeover() throws {
        if let reason = NetworkNamespaceFixture.skipReason() {
            print("SKIP \(#function): \(reason)")
            throw XCTSkip(reason)
        }
        if let reason = QemuGuest.printedSkipReason(#function) ?? IntegrationEnvironment.printedDaemonSkipReason(#function) {
            throw XCTSkip(reason)
        }
        let image = try QemuGuest.image()
        let network = try NetworkNamespaceFixture(tag: "ho")
        defer { network.destroy() }
        let namespaceAddress = "10.200.14.1", guestAddress = "10.200.14.2"
        try network.assignAddress(namespaceAddress + "/24")
        let config = """
        {"ports": [
          {"name": "vm", "type": "vhost-user", "socket": {"path": "vm.sock", "mode": "server"}},
          {"name": "kernel", "type": "af-packet", "interface": "\(network.hostInterface)"}
        ]}
        """
        let daemon = try SwitchDaemonProcess(config: config)
        defer { daemon.stop() }
        let socket = daemon.socketPath("vm.sock")
        try daemon.waitForFile(socket)
        let configuration = QemuGuest.Configuration(
            name: "takeover", socketPath: socket, socketMode: .qemuConnects, mac: "02:00:00:00:0e:02",
            guestParameters: [("ip", guestAddress + "/24"), ("peer", namespaceAddress), ("mode", "ping"),
                              ("count", "\(Self.pings)"), ("interval", "0.01"), ("quiet", "1")])
        let guest = try QemuGuest(configuration, image: image)
        defer { guest.terminate() }
        _ = try guest.waitForSerial("VS-READY", timeout: 180)
        try daemon.waitForLog("device ready", timeout: 30)
        Thread.sleep(forTimeInterval: 1.5)

        let successor = try SwitchDaemonProcess.takingOver(from: daemon)
        defer { successor.stop() }
        XCTAssertEqual(daemon.waitForExit(timeout: 30), 0, "\(daemon.output.suffix(3000))\nnew:\n\(successor.output.suffix(3000))")
        try successor.waitUntilHealthy()
        try guest.waitForSerial("VS-PING-DONE", timeout: 120)
        let summary = guest.testLines.first { $0.contains("packets transmitted") } ?? "(none)"
        let numbers = summary.split(whereSeparator: { !$0.isNumber }).compactMap { Int($0) }
        let received = numbers.count >= 2 ? numbers[1] : 0
        print("[qemu-takeover] \(summary); lost \(Self.pings - received) of \(Self.pings) (at most \(Self.maxLost))")
        XCTAssertGreaterThanOrEqual(received, Self.pings - Self.maxLost, "\(guest.describe())\n\(successor.output.suffix(3000))")
        let device = try successor.api.expect("GET", "/v1/ports/vm/device").object
        XCTAssertEqual(device["state"] as? String, "ready", "\(device)")
        XCTAssertEqual(device["sessions"] as? Int, 1, "QEMU did not reconnect: \(device)")
    }
}
