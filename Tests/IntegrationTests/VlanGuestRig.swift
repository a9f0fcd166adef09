import Foundation
import TestSupport
import XCTest

/// Words of the issue 18 counter names the tests look drops up by (`PortCounterSet.drops`): the
/// names were not final when the tests were written, so a rename is a change here only.
enum SegmentCounterWords {
    /// Frames with a VLAN the port does not carry.
    static let vlanNotCarried = ["vlan"]
    /// Frames whose source MAC is not in `allowed_macs`.
    static let spoofed = ["spoof"]
    /// Frames whose new source MAC was not learned because the port reached `max_macs`.
    static let macLimit = "switch.macs_not_learned_limit"
}

/// Three Linux guests in QEMU (TCG) on access ports of one switch, all in 10.201.18.0/24:
/// a (.11) and b (.12) on VLAN 10, c (.21) on VLAN 20; and a network namespace behind an
/// af-packet trunk port carrying VLANs 10 and 20, where `VlanResponder` answers for
/// 10.201.18.110 on VLAN 10 and 10.201.18.120 on VLAN 20 (one MAC on both). The guests run
/// without IPv6, so they send only what a test makes them send, and take shell commands
/// (`GuestCommandChannel`). Booted once per test class (three TCG boots are the slow part).
/// A fourth guest on a vhost-user trunk port (`startTrunkGuest`) is booted only by the test
/// that needs it.
final class VlanGuestRig {
    struct Guest {
        var port: String
        var vlan: UInt16
        var address: String
        var mac: String
        var qemu: QemuGuest
        var shell: GuestCommandChannel
    }

    static let subnet = "10.201.18"
    static let trunkVLANs: [UInt16] = [10, 20]
    static let responderMAC = "02:18:00:00:01:01"
    static let responderAddresses: [UInt16: String] = [10: "\(subnet).110", 20: "\(subnet).120"]
    static let trunkPort = "trunk"
    /// The vhost-user trunk port (VLANs 10 and 20) of `startTrunkGuest`'s guest.
    static let trunkGuestPort = "t"
    static let trunkGuestMAC = "02:18:00:00:00:30"

    let image: QemuGuest.Image
    let network: NetworkNamespaceFixture
    let daemon: SwitchDaemonProcess
    let api: SwitchAPIClient
    let responder: VlanResponder
    private(set) var guests: [String: Guest] = [:]
    private(set) var trunkGuest: QemuGuest?
    /// Why the daemon refused a port with its policy keys (the ports were then created without
    /// them, so the rest can run); nil when it took them. Tests that need segments assert nil.
    private(set) var policyRefused: String?

    /// Prints and returns why this machine cannot run the rig.
    static func skipReason(_ test: String) -> String? {
        if let reason = IntegrationEnvironment.printedDaemonSkipReason(test) { return reason }
        for reason in [NetworkNamespaceFixture.skipReason(), VlanResponder.skipReason()].compactMap({ $0 }) {
            print("SKIP \(test): \(reason)")
            return reason
        }
        return QemuGuest.printedSkipReason(test)
    }

    init() throws {
        image = try QemuGuest.image()
        network = try NetworkNamespaceFixture(tag: "vlan", prefix: "segt")
        // No IPv6 on either end: no router solicitations or MLD reports in the counters.
        try NetworkNamespaceFixture.run(["/usr/sbin/sysctl", "-q", "-w", "net.ipv6.conf.\(network.hostInterface).disable_ipv6=1"], check: false)
        try network.inside(["/usr/sbin/sysctl", "-q", "-w", "net.ipv6.conf.\(network.namespaceInterface).disable_ipv6=1"], check: false)
        daemon = try SwitchDaemonProcess(config: #"{"ports": []}"#, extraArguments: ["--log-level", "info"])
        try daemon.waitUntilHealthy()
        api = daemon.api
        responder = try VlanResponder(network: network, mac: Self.responderMAC, addresses: Self.responderAddresses)

        let layout: [(port: String, vlan: UInt16, host: Int)] = [("a", 10, 11), ("b", 10, 12), ("c", 20, 21)]
        for guest in layout {
            try createPort(["name": guest.port, "type": "vhost-user", "socket": ["path": "\(guest.port).sock"]], policy: ["vlan": guest.vlan])
        }
        try createPort(["name": Self.trunkPort, "type": "af-packet", "interface": network.hostInterface],
                       policy: ["trunk": Self.trunkVLANs.map(Int.init)])
        var booting: [(port: String, vlan: UInt16, address: String, mac: String, qemu: QemuGuest)] = []
        for guest in layout {
            let address = "\(Self.subnet).\(guest.host)", mac = String(format: "02:18:00:00:00:%02x", guest.host)
            booting.append((guest.port, guest.vlan, address, mac, try startGuest(port: guest.port, mac: mac, address: address)))
        }
        for guest in booting {
            guests[guest.port] = Guest(port: guest.port, vlan: guest.vlan, address: guest.address, mac: guest.mac, qemu: guest.qemu,
                                       shell: try waitUntilReady(guest.qemu, "\(guest.port) (VLAN \(guest.vlan), \(guest.address))"))
        }
    }

    /// Starts QEMU on port `port`'s socket, answering on `address` (nil: no address on eth0).
    private func startGuest(port: String, mac: String, address: String?) throws -> QemuGuest {
        let socket = daemon.socketPath("\(port).sock")
        try daemon.waitForFile(socket)
        var configuration = QemuGuest.Configuration(name: "segt-\(port)", socketPath: socket, mac: mac,
                                                    guestParameters: (address.map { [("ip", $0 + "/24")] } ?? []) + [("mode", "answer"), ("ipv6", "off")],
                                                    tcgCpuModel: GuestThroughputTests.tcgCpuModel)
        configuration.commandChannel = true
        return try QemuGuest(configuration, image: image)
    }

    private func waitUntilReady(_ qemu: QemuGuest, _ name: String) throws -> GuestCommandChannel {
        let seconds = try qemu.waitForSerial("VS-READY", timeout: 300)
        print("[vlan] guest \(name) ready \(String(format: "%.1f", seconds)) s after QEMU started")
        return try GuestCommandChannel(qemu)
    }

    /// Boots a fourth guest (one TCG boot) on a new vhost-user trunk port `trunkGuestPort`
    /// carrying VLANs 10 and 20, with no native VLAN and no address on its untagged eth0; the
    /// test gives it VLAN sub-interfaces. `stopTrunkGuest` ends it and deletes the port.
    func startTrunkGuest() throws -> GuestCommandChannel {
        let created = try api.createPort(["name": Self.trunkGuestPort, "type": "vhost-user", "socket": ["path": "\(Self.trunkGuestPort).sock"],
                                          "trunk": Self.trunkVLANs.map(Int.init)])
        guard created.status == 201 || created.status == 200 else { throw QemuGuest.QemuError("POST /v1/ports (trunk guest): \(created)") }
        let qemu = try startGuest(port: Self.trunkGuestPort, mac: Self.trunkGuestMAC, address: nil)
        trunkGuest = qemu
        return try waitUntilReady(qemu, "\(Self.trunkGuestPort) (trunk \(Self.trunkVLANs))")
    }

    func stopTrunkGuest() {
        trunkGuest?.terminate()
        trunkGuest = nil
        _ = try? api.request("DELETE", "/v1/ports/\(Self.trunkGuestPort)")
    }

    /// POST /v1/ports with `body` plus `policy`. When the daemon refuses the policy keys, notes
    /// why and creates the port without them, so the parts that need no segments still run.
    private func createPort(_ body: [String: Any], policy: [String: Any]) throws {
        let reply = try api.createPort(body.merging(policy) { $1 })
        if reply.status == 201 || reply.status == 200 { return }
        policyRefused = (policyRefused.map { $0 + "; " } ?? "") + "\(body["name"] ?? "?") with \(policy): \(reply)"
        let plain = try api.createPort(body)
        guard plain.status == 201 || plain.status == 200 else {
            throw QemuGuest.QemuError("POST /v1/ports \(body): \(plain)")
        }
    }

    func guest(_ port: String) -> Guest { guests[port]! }

    /// Each guest forgets its neighbours, so the next exchange starts with ARP broadcasts.
    func flushNeighbours() throws {
        for guest in guests.values { _ = try guest.shell.run("ip neigh flush dev eth0") }
    }

    /// Frames the switch handed to each port's transmit side (switch.tx_packets), and each
    /// guest's eth0 rx_packets: the two views of "did anything arrive".
    func arrivals() throws -> (portTx: [String: Int], guestRx: [String: Int]) {
        let counters = try api.portCounters()
        var portTx: [String: Int] = [:], guestRx: [String: Int] = [:]
        for (port, guest) in guests {
            portTx[port] = counters[port]?["switch.tx_packets"] ?? -1
            guestRx[port] = try guest.shell.interfaceCounter("rx_packets")
        }
        return (portTx, guestRx)
    }

    func context() -> String {
        let guestLogs = guests.values.sorted { $0.port < $1.port }.map { "--- guest \($0.port) ---\n\($0.qemu.describe())" }
            + (trunkGuest.map { ["--- trunk guest \(Self.trunkGuestPort) ---\n\($0.describe())"] } ?? [])
        return guestLogs.joined(separator: "\n") + "\n--- responder ---\n\(responder.output.suffix(3000))\n--- switch ---\n\(daemon.output.suffix(4000))"
    }

    func tearDown() {
        stopTrunkGuest()
        for guest in guests.values { guest.qemu.terminate() }
        responder.stop()
        daemon.stop()
        network.destroy()
    }
}
