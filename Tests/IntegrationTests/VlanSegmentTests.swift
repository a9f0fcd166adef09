// VLAN segments and port security with real guests (issue 18, item 5): three Linux guests in
// QEMU on access ports (a and b on VLAN 10, c on VLAN 20, one IPv4 subnet) and a namespace
// behind a trunk af-packet port (VLANs 10 and 20, tags made by scripts/vlan-responder.py, and
// the kernel's own VLAN sub-interfaces where the host kernel has 802.1Q); a fourth guest on a
// vhost-user trunk port uses its kernel's 8021q. One rig (`VlanGuestRig`) per class; every
// test leaves the ports as it found them.
import Foundation
import TestSupport
import XCTest

final class VlanSegmentTests: XCTestCase {
    nonisolated(unsafe) private static var rig: Result<VlanGuestRig, any Error>?

    private func sharedRig(_ test: String = #function) throws -> VlanGuestRig {
        if let reason = VlanGuestRig.skipReason(test) { throw XCTSkip(reason) }
        if Self.rig == nil { Self.rig = Result { try VlanGuestRig() } }
        return try Self.rig!.get()
    }

    override class func tearDown() {
        if case .success(let rig) = rig { rig.tearDown() }
        rig = nil
        super.tearDown()
    }

    /// The ports were created with their segment keys, and GET shows them.
    func testPortsShowTheirSegmentKeys() throws {
        let rig = try sharedRig()
        XCTAssertNil(rig.policyRefused, "POST /v1/ports with vlan/trunk")
        for port in ["a", "b", "c"] {
            let reply = try rig.api.expect("GET", "/v1/ports/\(port)", status: [200])
            XCTAssertEqual(reply.object["vlan"] as? Int, Int(rig.guest(port).vlan), "GET /v1/ports/\(port): \(reply)")
            XCTAssertEqual(reply.object["trunk"] as? [Int] ?? [], [], "an access port carries no tagged VLANs: \(reply)")
        }
        let trunk = try rig.api.expect("GET", "/v1/ports/\(VlanGuestRig.trunkPort)", status: [200])
        XCTAssertEqual(trunk.object["trunk"] as? [Int], VlanGuestRig.trunkVLANs.map(Int.init), "\(trunk)")
    }

    /// a and b (both VLAN 10) ping each other, each way.
    func testSameVlanGuestsPingEachOtherBothWays() throws {
        let rig = try sharedRig()
        try rig.flushNeighbours()
        for (from, to) in [("a", "b"), ("b", "a")] {
            let ping = try rig.guest(from).shell.ping(rig.guest(to).address)
            XCTAssertTrue(ping.allAnswered, "\(from) -> \(to) on VLAN 10:\n\(ping.output)\n\(rig.context())")
        }
    }

    /// Broadcasts (ARP) from one VLAN never reach a port of the other: c (VLAN 20) asks for a's
    /// address, then a (VLAN 10) for c's. The other VLAN's ports get no frame at all (the
    /// switch's transmit count for the port and the guest's own eth0 rx_packets do not move),
    /// the pings fail, and the trunk sees the broadcasts tagged with the sender's VLAN (so they
    /// were sent and flooded in their own segment).
    func testBroadcastsNeverCrossVlans() throws {
        let rig = try sharedRig()
        for (sender, target, others) in [("c", "a", ["a", "b"]), ("a", "c", ["c"])] {
            try rig.flushNeighbours()
            let from = rig.guest(sender), to = rig.guest(target)
            let before = try rig.arrivals()
            let senderRxBefore = try rig.api.portCounters()[sender]?["switch.rx_packets"] ?? 0
            let responderSeen = rig.responder.received.count
            _ = try from.shell.run("arping -b -c 3 -w 4 -I eth0 \(to.address)", timeout: 30)
            let ping = try from.shell.run("ping -c 2 -i 0.5 -W 1 \(to.address)", timeout: 30)
            Thread.sleep(forTimeInterval: 0.5)
            let after = try rig.arrivals()
            let senderRxAfter = try rig.api.portCounters()[sender]?["switch.rx_packets"] ?? 0

            XCTAssertGreaterThanOrEqual(senderRxAfter - senderRxBefore, 3, "the switch took \(sender)'s ARP broadcasts")
            XCTAssertNotEqual(ping.status, 0, "\(sender) (VLAN \(from.vlan)) reached \(target) (VLAN \(to.vlan)):\n\(ping.output)")
            for port in others {
                XCTAssertEqual(after.portTx[port]! - before.portTx[port]!, 0,
                               "frames from \(sender) (VLAN \(from.vlan)) handed to port \(port) (VLAN \(rig.guest(port).vlan))")
                XCTAssertEqual(after.guestRx[port]! - before.guestRx[port]!, 0,
                               "guest \(port) (VLAN \(rig.guest(port).vlan)) received frames during \(sender)'s broadcasts")
            }
            let atTrunk = rig.responder.received.dropFirst(responderSeen).filter { $0.source == from.mac }
            XCTAssertGreaterThanOrEqual(atTrunk.count, 3, "the trunk saw \(sender)'s broadcasts:\n\(rig.responder.output.suffix(2000))")
            XCTAssertEqual(Set(atTrunk.map(\.vlan)), [from.vlan], "\(sender)'s frames leave the trunk tagged \(from.vlan): \(atTrunk)")
        }
    }

    /// The namespace behind the trunk answers 10.201.18.110 on VLAN 10 and .120 on VLAN 20, each
    /// with its tag: a (VLAN 10) reaches .110 and not .120, c (VLAN 20) reaches .120 and not
    /// .110, and every frame of theirs arrives at the trunk with their VLAN's tag.
    func testTrunkCarriesEachVlanTagged() throws {
        let rig = try sharedRig()
        try rig.flushNeighbours()
        let responderSeen = rig.responder.received.count
        for port in ["a", "c"] {
            let guest = rig.guest(port)
            for (vlan, address) in VlanGuestRig.responderAddresses.sorted(by: { $0.key < $1.key }) {
                let ping = try guest.shell.ping(address, count: 3)
                if vlan == guest.vlan {
                    XCTAssertTrue(ping.allAnswered, "\(port) (VLAN \(guest.vlan)) -> \(address) on the trunk:\n\(ping.output)\n\(rig.context())")
                } else {
                    XCTAssertFalse(ping.output.contains(" bytes from "), "\(port) (VLAN \(guest.vlan)) got answers from VLAN \(vlan)'s \(address):\n\(ping.output)")
                }
            }
            let frames = rig.responder.received.dropFirst(responderSeen).filter { $0.source == guest.mac }
            XCTAssertFalse(frames.isEmpty, "nothing from \(port) reached the trunk")
            XCTAssertEqual(Set(frames.map(\.vlan)), [guest.vlan], "\(port)'s frames at the trunk carry tag \(guest.vlan): \(frames)")
        }
        let learned = try rig.api.learnedEntries(port: VlanGuestRig.trunkPort)
        // One MAC answering on both VLANs: two entries, one per segment (GET /v1/fdb shows the VLAN).
        let responder = Set(learned.filter { $0.mac == VlanGuestRig.responderMAC }.compactMap(\.vlan))
        XCTAssertEqual(responder, [10, 20], "the responder's MAC learned on the trunk in both VLANs: \(learned)")
    }

    /// Frames tagged 30 (a VLAN the trunk does not carry) reach no guest and are counted as
    /// dropped on the trunk; the same burst tagged 10 reaches a and b (untagged: a answers the
    /// ARP and the answer comes back tagged 10) and not c.
    func testUnknownVlanFromTrunkReachesNoGuest() throws {
        let rig = try sharedRig()
        let burst = 20
        let a = rig.guest("a")
        let sender = "\(VlanGuestRig.subnet).130"
        let dropsBefore = try rig.api.portCounters()[VlanGuestRig.trunkPort]?.drops(matching: SegmentCounterWords.vlanNotCarried)
        // /metrics: per VLAN (a series appears with the segment's first drop) and per port.
        let metricSeries = [#"vhost_switch_segment_drops_total{vlan="30",reason="vlan_not_carried"}"#,
                            #"vhost_switch_port_switch_drops_total{port="\#(VlanGuestRig.trunkPort)",direction="rx",reason="vlan_not_carried"}"#]
        let metricsBefore = try KernelPortMetricsTests.metrics(rig.api).samples
        var before = try rig.arrivals()
        try rig.responder.sendBroadcasts(vlan: 30, count: burst, target: a.address, sender: sender)
        Thread.sleep(forTimeInterval: 1)
        var after = try rig.arrivals()
        for port in ["a", "b", "c"] {
            XCTAssertEqual(after.portTx[port]! - before.portTx[port]!, 0, "VLAN 30 frames handed to port \(port)")
            XCTAssertEqual(after.guestRx[port]! - before.guestRx[port]!, 0, "guest \(port) received VLAN 30 frames")
        }
        let trunkCounters = try rig.api.portCounters()[VlanGuestRig.trunkPort]
        let dropsAfter = trunkCounters?.drops(matching: SegmentCounterWords.vlanNotCarried)
        XCTAssertNotNil(dropsAfter, "no drop counter named with \(SegmentCounterWords.vlanNotCarried) on the trunk: \(trunkCounters.map { "\($0)" } ?? "-")")
        if let dropsAfter { XCTAssertGreaterThanOrEqual(dropsAfter - (dropsBefore ?? 0), burst, "VLAN 30 drops counted on the trunk") }
        let metricsAfter = try KernelPortMetricsTests.metrics(rig.api)
        for series in metricSeries {
            let shown = metricsAfter.text.split(separator: "\n").filter { $0.contains("vlan_not_carried") }.joined(separator: "\n")
            guard let value = metricsAfter.samples[series] else { XCTFail("/metrics has no \(series):\n\(shown)"); continue }
            XCTAssertGreaterThanOrEqual(Int(value) - Int(metricsBefore[series] ?? 0), burst, "\(series) rose by the burst:\n\(shown)")
        }

        // The same on VLAN 10 arrives: the control that the burst and the counters work.
        let responderSeen = rig.responder.received.count
        before = try rig.arrivals()
        try rig.responder.sendBroadcasts(vlan: 10, count: burst, target: a.address, sender: sender)
        Thread.sleep(forTimeInterval: 1)
        after = try rig.arrivals()
        for port in ["a", "b"] {
            XCTAssertGreaterThanOrEqual(after.portTx[port]! - before.portTx[port]!, burst, "VLAN 10 broadcasts handed to port \(port)")
            XCTAssertGreaterThanOrEqual(after.guestRx[port]! - before.guestRx[port]!, burst, "guest \(port) received the VLAN 10 broadcasts")
        }
        XCTAssertEqual(after.portTx["c"]! - before.portTx["c"]!, 0, "VLAN 10 broadcasts handed to c (VLAN 20)")
        let answers = rig.responder.received.dropFirst(responderSeen).filter { $0.source == a.mac && $0.etherType == 0x0806 }
        XCTAssertFalse(answers.isEmpty, "a answered none of the VLAN 10 ARP requests (it got them tagged?):\n\(rig.context())")
        XCTAssertEqual(Set(answers.map(\.vlan)), [10], "a's ARP replies come back tagged 10: \(answers)")
    }

    /// allowed_macs set to a MAC that is not b's: b's frames (its ARP and echo replies) are
    /// dropped and counted as spoofed, so a cannot ping b, while a still reaches the trunk. PATCH allowed_macs to b's real MAC:
    /// pings come back, and b's vhost-user session is the same one (no reconnect).
    func testSpoofingGuestIsDroppedUntilAllowedMacsFixedLive() throws {
        let rig = try sharedRig()
        let a = rig.guest("a"), b = rig.guest("b")
        defer { _ = try? rig.api.patchPort("b", ["allowed_macs": NSNull()]) }
        let sessionsBefore = try rig.api.portCounters()["b"]?["sessions"]
        let readyEventsBefore = try SwitchEventHistory.fetch(apiSocket: rig.daemon.apiSocketPath)
            .filter { $0.port == "b" && $0.type == "device.ready" }.count
        let spoofedBefore = try rig.api.portCounters()["b"]?.drops(matching: SegmentCounterWords.spoofed) ?? 0

        let wrong = try rig.api.patchPort("b", ["allowed_macs": ["02:18:00:00:00:ee"]])
        XCTAssertTrue([200, 204].contains(wrong.status), "PATCH allowed_macs: \(wrong)")
        try rig.flushNeighbours()
        let blocked = try a.shell.ping(b.address, count: 3)
        XCTAssertFalse(blocked.output.contains(" bytes from "), "b answered while its MAC is not allowed:\n\(blocked.output)")
        let spoofed = try rig.api.portCounters()["b"]?.drops(matching: SegmentCounterWords.spoofed)
        XCTAssertNotNil(spoofed, "no drop counter named with \(SegmentCounterWords.spoofed) on port b")
        if let spoofed { XCTAssertGreaterThan(spoofed - spoofedBefore, 0, "b's frames counted as spoofed") }
        // A neighbour keeps forwarding while b spoofs: a reaches the trunk's VLAN-10 address.
        let neighbour = try a.shell.ping(VlanGuestRig.responderAddresses[10]!, count: 3)
        XCTAssertTrue(neighbour.allAnswered, "a -> trunk while b was spoofing:\n\(neighbour.output)")

        let fixed = try rig.api.patchPort("b", ["allowed_macs": [b.mac]])
        XCTAssertTrue([200, 204].contains(fixed.status), "PATCH allowed_macs: \(fixed)")
        let shown = try rig.api.expect("GET", "/v1/ports/b", status: [200])
        XCTAssertEqual((shown.object["allowed_macs"] as? [String])?.map { $0.lowercased() }, [b.mac], "GET shows the new list: \(shown)")
        // The guests' neighbour entries failed while b was blocked (Linux then waits seconds
        // before it asks again): start them afresh, as after the blocking PATCH.
        try rig.flushNeighbours()
        let back = try a.shell.ping(b.address, count: 5)
        XCTAssertTrue(back.allAnswered, "a -> b after allowed_macs was fixed:\n\(back.output)\n\(rig.context())")
        XCTAssertEqual(try rig.api.portCounters()["b"]?["sessions"], sessionsBefore, "b's guest reconnected")
        let readyEventsAfter = try SwitchEventHistory.fetch(apiSocket: rig.daemon.apiSocketPath)
            .filter { $0.port == "b" && $0.type == "device.ready" }.count
        XCTAssertEqual(readyEventsAfter, readyEventsBefore, "device.ready again on b: the PATCH reconnected the device")
    }

    /// Guest b sends with a's MAC while b's allowed_macs lists only b's own: each such frame is
    /// dropped and counted as spoofed, none reaches another port, and a's entry in the table
    /// stays on port a (without allowed_macs the table would move it to b at once: MAC theft).
    func testGuestSendingWithAnotherGuestsMacIsDroppedAndLeavesItsEntryOnItsPort() throws {
        let rig = try sharedRig()
        XCTAssertNil(rig.policyRefused, "POST /v1/ports with vlan/trunk")
        let a = rig.guest("a"), b = rig.guest("b"), responder = VlanGuestRig.responderAddresses[10]!
        defer {
            _ = try? b.shell.run("ip link set eth0 address \(b.mac)")
            _ = try? rig.api.patchPort("b", ["allowed_macs": NSNull()])
        }
        XCTAssertEqual(try rig.api.patchPort("b", ["allowed_macs": [b.mac]]).status, 200, "PATCH b allowed_macs")
        XCTAssertTrue(try a.shell.ping(responder, count: 1).allAnswered, "a -> trunk, so a's MAC is learned on port a")
        XCTAssertTrue(try rig.api.learnedEntries(port: "a").contains { $0.mac == a.mac && $0.vlan == 10 }, "a's MAC learned on a in VLAN 10")

        let spoofedBefore = try rig.api.portCounters()["b"]?.drops(matching: SegmentCounterWords.spoofed) ?? 0
        let responderSeen = rig.responder.received.count
        let before = try rig.arrivals()
        let stolen = try b.shell.run("ip link set eth0 address \(a.mac)")
        XCTAssertEqual(stolen.status, 0, "b takes a's MAC: \(stolen)")
        let sent = 5
        _ = try b.shell.run("arping -b -c \(sent) -w 4 -I eth0 \(responder)", timeout: 30)
        Thread.sleep(forTimeInterval: 0.5)
        let after = try rig.arrivals()

        let spoofed = try rig.api.portCounters()["b"]?.drops(matching: SegmentCounterWords.spoofed) ?? 0
        XCTAssertGreaterThanOrEqual(spoofed - spoofedBefore, sent, "b's frames from a's MAC counted as spoofed")
        XCTAssertEqual(after.portTx["a"]! - before.portTx["a"]!, 0, "b's broadcasts from a's MAC handed to port a")
        let atTrunk = rig.responder.received.dropFirst(responderSeen).filter { $0.source == a.mac }
        XCTAssertEqual(atTrunk, [], "frames from a's MAC reached the trunk while only b sent")
        let fdb = try rig.api.expect("GET", "/v1/fdb", status: [200])
        let owners = (fdb.object["entries"] as? [[String: Any]] ?? []).filter { ($0["mac"] as? String)?.lowercased() == a.mac }
        XCTAssertEqual(owners.map { $0["port"] as? String }, ["a"], "a's MAC stays learned on port a only: \(owners)")

        let restored = try b.shell.run("ip link set eth0 address \(b.mac)")
        XCTAssertEqual(restored.status, 0, "b takes its own MAC back: \(restored)")
        try rig.flushNeighbours()
        let back = try a.shell.ping(b.address, count: 3)
        XCTAssertTrue(back.allAnswered, "a -> b once b sends from its own MAC:\n\(back.output)\n\(rig.context())")
    }

    /// The kernel's own VLAN sub-interfaces behind the af-packet trunk: <if>.10 and <if>.20 in
    /// the namespace ping the VLAN 10 guests and the VLAN 20 guest, and an ARP broadcast on
    /// <if>.10 reaches no VLAN 20 port (and the other way round). Needs CONFIG_VLAN_8021Q on
    /// the host (skipped otherwise; the responder's tests cover the trunk then).
    func testKernelVlanSubinterfacesBehindTheTrunk() throws {
        let rig = try sharedRig()
        XCTAssertNil(rig.policyRefused, "POST /v1/ports with vlan/trunk")
        let base = rig.network.namespaceInterface
        let subinterfaces: [(vlan: UInt16, name: String, address: String)] =
            [(10, "\(base).10", "\(VlanGuestRig.subnet).111"), (20, "\(base).20", "\(VlanGuestRig.subnet).121")]
        defer { for sub in subinterfaces { _ = try? rig.network.inside(["ip", "link", "del", sub.name], check: false) } }
        // Both sub-interfaces are in the guests' one subnet: pings are bound to one (ping -I),
        // and a reply on the second must not fail the reverse-path check against the first's
        // route. New interfaces start without IPv6 (no router solicitations in the counters).
        for setting in ["net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0", "net.ipv6.conf.default.disable_ipv6=1"] {
            try rig.network.inside(["/usr/sbin/sysctl", "-q", "-w", setting])
        }
        for sub in subinterfaces {
            let made = try rig.network.inside(["ip", "link", "add", "link", base, "name", sub.name, "type", "vlan", "id", String(sub.vlan)], check: false)
            guard made.status == 0 else {
                let reason = "the host kernel has no 802.1Q VLAN devices (CONFIG_VLAN_8021Q, module 8021q): `ip link add ... type vlan` said "
                    + "\(made.output.trimmingCharacters(in: .whitespacesAndNewlines)); the vlan-responder tests cover the trunk"
                print("SKIP \(#function): \(reason)")
                throw XCTSkip(reason)
            }
            try rig.network.inside(["ip", "addr", "add", sub.address + "/24", "dev", sub.name])
            try rig.network.inside(["ip", "link", "set", sub.name, "up"])
        }
        func ping(_ address: String, from sub: String) throws -> (status: Int32, output: String) {
            try rig.network.inside(["ping", "-c", "3", "-i", "0.2", "-W", "2", "-I", sub, address], check: false)
        }
        try rig.flushNeighbours()
        for (port, sub) in [("a", subinterfaces[0]), ("b", subinterfaces[0]), ("c", subinterfaces[1])] {
            let result = try ping(rig.guest(port).address, from: sub.name)
            XCTAssertEqual(result.status, 0, "\(sub.name) (VLAN \(sub.vlan)) -> \(port):\n\(result.output)\n\(rig.context())")
        }
        // Both sub-interfaces send from the namespace end's own MAC: one entry per VLAN.
        let mac = try rig.network.inside(["cat", "/sys/class/net/\(base)/address"]).output.trimmingCharacters(in: .whitespacesAndNewlines)
        let learned = try rig.api.learnedEntries(port: VlanGuestRig.trunkPort)
        XCTAssertEqual(Set(learned.filter { $0.mac == mac }.compactMap(\.vlan)), [10, 20],
                       "the sub-interfaces' MAC \(mac) learned on the trunk in both VLANs: \(learned)")

        for (sub, target, others) in [(subinterfaces[0], "c", ["c"]), (subinterfaces[1], "a", ["a", "b"])] {
            // Nobody re-checks a neighbour of the pings above during the window (a guest's
            // unicast ARP probe would be answered in its own VLAN and counted).
            try rig.network.inside(["ip", "neigh", "flush", "all"])
            try rig.flushNeighbours()
            let before = try rig.arrivals()
            let crossed = try ping(rig.guest(target).address, from: sub.name)
            let after = try rig.arrivals()
            XCTAssertNotEqual(crossed.status, 0, "\(sub.name) (VLAN \(sub.vlan)) reached \(target) (VLAN \(rig.guest(target).vlan)):\n\(crossed.output)")
            for port in others {
                XCTAssertEqual(after.portTx[port]! - before.portTx[port]!, 0, "\(sub.name)'s ARP broadcasts handed to port \(port)")
                XCTAssertEqual(after.guestRx[port]! - before.guestRx[port]!, 0, "guest \(port) received \(sub.name)'s broadcasts")
            }
            let sameVLAN = rig.guests.values.filter { $0.vlan == sub.vlan }.map(\.port)
            for port in sameVLAN {
                XCTAssertGreaterThan(after.portTx[port]! - before.portTx[port]!, 0, "\(sub.name)'s ARP broadcasts reached its own VLAN's port \(port)")
            }
        }
    }

    /// A guest on a vhost-user trunk port (VLANs 10 and 20) with its kernel's 8021q: eth0.10 and
    /// eth0.20 ping the VLAN 10 guests and the VLAN 20 guest (the switch takes the guest's tags
    /// and tags what it sends it), and a broadcast on eth0.10 never reaches the VLAN 20 guest.
    func testTrunkGuestWithVlanSubinterfacesReachesBothVlans() throws {
        let rig = try sharedRig()
        XCTAssertNil(rig.policyRefused, "POST /v1/ports with vlan/trunk")
        guard rig.image.hasVLANModule else {
            let reason = "the guest kernel \(rig.image.kernelVersion) has no 8021q module (scripts/guest/build-initramfs.sh said vlan=no)"
            print("SKIP \(#function): \(reason)")
            throw XCTSkip(reason)
        }
        let trunk = try rig.startTrunkGuest()
        defer { rig.stopTrunkGuest() }
        try trunk.addVLANInterfaces([(10, "\(VlanGuestRig.subnet).31/24"), (20, "\(VlanGuestRig.subnet).32/24")])
        try rig.flushNeighbours()
        for (port, interface) in [("a", "eth0.10"), ("b", "eth0.10"), ("c", "eth0.20")] {
            let ping = try trunk.ping(rig.guest(port).address, count: 3, interface: interface)
            XCTAssertTrue(ping.allAnswered, "trunk guest \(interface) -> \(port) (VLAN \(rig.guest(port).vlan)):\n\(ping.output)\n\(rig.context())")
        }
        let learned = try rig.api.learnedEntries(port: VlanGuestRig.trunkGuestPort)
        XCTAssertEqual(Set(learned.filter { $0.mac == VlanGuestRig.trunkGuestMAC }.compactMap(\.vlan)), [10, 20],
                       "the trunk guest's MAC learned on its port in both VLANs: \(learned)")

        // Nobody re-checks a neighbour of the pings above during the window (c's unicast ARP
        // probe for eth0.20's address would be answered on VLAN 20 and counted).
        _ = try trunk.run("ip neigh flush all")
        try rig.flushNeighbours()
        let c = rig.guest("c")
        let before = try rig.arrivals()
        let sent = 3
        _ = try trunk.run("arping -b -c \(sent) -w 4 -I eth0.10 \(c.address)", timeout: 30)
        let crossed = try trunk.ping(c.address, count: 2, interface: "eth0.10")
        Thread.sleep(forTimeInterval: 0.5)
        let after = try rig.arrivals()
        XCTAssertFalse(crossed.output.contains(" bytes from "), "eth0.10 (VLAN 10) reached c (VLAN 20):\n\(crossed.output)")
        XCTAssertEqual(after.portTx["c"]! - before.portTx["c"]!, 0, "the trunk guest's VLAN 10 broadcasts handed to port c (VLAN 20)")
        XCTAssertEqual(after.guestRx["c"]! - before.guestRx["c"]!, 0, "guest c (VLAN 20) received the VLAN 10 broadcasts")
        for port in ["a", "b"] {
            XCTAssertGreaterThanOrEqual(after.portTx[port]! - before.portTx[port]!, sent, "the VLAN 10 broadcasts reached port \(port)")
        }
    }
}
