// Issue 18, "Every setting is live": PATCH /v1/ports/{name} changes a port's VLAN, allowed
// MACs and rate limit over real HTTP (curl) while a dpdk-testpmd front-end is connected. The
// answer and GET show the new settings, the state file has them, and the device is never
// reconnected: same session, no device events. What the settings do to frames is the
// dataplane's tests; here traffic is checked to stop once a VLAN PATCH has been answered (with
// frames circulating on two poll threads) and to flow again once the settings are reset.
import Foundation
import TestSupport
import XCTest

final class LivePolicyChangeTests: XCTestCase {
    private let frontEndMACs = ["02:00:00:00:18:01", "02:00:00:00:18:02"]

    private func device(_ api: SwitchAPIClient, _ port: String) throws -> (state: String?, sessions: Int?) {
        let reply = try api.expect("GET", "/v1/ports/\(port)/device", status: [200])
        return (reply.object["state"] as? String, reply.object["sessions"] as? Int)
    }

    /// The events after `since` as GET /v1/events returns them in JSON: (type, port, data).
    private func events(_ api: SwitchAPIClient, since: Int) throws -> [(type: String, port: String?, data: [String: Any])] {
        let reply = try api.request("GET", "/v1/events?since=\(since)")
        XCTAssertEqual(reply.status, 200, reply.description)
        return (reply.json as? [[String: Any]] ?? []).map {
            ($0["type"] as? String ?? "", $0["port"] as? String, $0["data"] as? [String: Any] ?? [:])
        }
    }

    private func lastEventID(_ api: SwitchAPIClient) throws -> Int {
        ((try api.request("GET", "/v1/events").json as? [[String: Any]])?.last?["id"] as? Int) ?? 0
    }

    private func savedPort(_ daemon: SwitchDaemonProcess, _ name: String) throws -> [String: Any] {
        let ports = try SavedPortState.ports(inStateDirectory: daemon.stateDirectory)
        return try XCTUnwrap(ports.first { $0["name"] as? String == name }, "\(name) in the state file")
    }

    func testPatchOnAConnectedPortChangesSettingsWithoutReconnecting() throws {
        if let reason = IntegrationEnvironment.printedSkipReason() { throw XCTSkip(reason) }
        if let reason = IntegrationEnvironment.printedDaemonSkipReason() { throw XCTSkip(reason) }
        // Port b takes policy keys from the config file, ones that leave its untagged traffic with a alone.
        var daemon = try SwitchDaemonProcess(config: """
            {"ports": [
              {"name": "a", "type": "vhost-user", "socket": {"path": "a.sock"}},
              {"name": "b", "type": "vhost-user", "socket": {"path": "b.sock"}, "max_macs": 32, "storm_control": {"broadcast_pps": 1000}}
            ]}
            """, extraArguments: ["--pmd-cpus", "1"])
        defer { daemon.stop() }
        try daemon.waitUntilHealthy()
        let api = daemon.api
        let frontEnd = try Testpmd.frontEnd(sockets: [daemon.socketPath("a.sock"), daemon.socketPath("b.sock")],
                                            macs: frontEndMACs, cpu: 0, burst: 16)
        defer { frontEnd.quit() }
        try frontEnd.waitForLinkUp(ports: [0, 1])
        try daemon.waitForLog("port=b [Dataplane] device ready")
        try frontEnd.exchangeBothWays()
        let before = try device(api, "a")
        XCTAssertEqual(before.state, "ready")
        XCTAssertEqual(before.sessions, 1)
        let fromConfig = try api.expect("GET", "/v1/ports/b", status: [200]).object
        XCTAssertEqual(fromConfig["max_macs"] as? Int, 32)
        XCTAssertEqual(fromConfig["trunk"] as? [Int], [])
        XCTAssertEqual((fromConfig["storm_control"] as? [String: Any])?["broadcast_pps"] as? Int, 1000)
        let since = try lastEventID(api)

        let patched = try api.request("PATCH", "/v1/ports/a", body: """
            {"vlan": 10, "allowed_macs": ["\(frontEndMACs[0])"], "rate_limit": {"pps": 100000, "burst": 64}}
            """, contentType: "application/merge-patch+json")
        XCTAssertEqual(patched.status, 200, patched.description)
        for shown in [patched.object, try api.expect("GET", "/v1/ports/a", status: [200]).object] {
            XCTAssertEqual(shown["vlan"] as? Int, 10)
            XCTAssertEqual(shown["allowed_macs"] as? [String], [frontEndMACs[0]])
            XCTAssertEqual(shown["rate_limit"] as? [String: Int], ["pps": 100000, "burst": 64])
            XCTAssertEqual(shown["max_macs"] as? Int, 64)
            XCTAssertEqual(shown["state"] as? String, "ready")
        }
        // Plain application/json is a merge patch too; a refused patch changes nothing.
        XCTAssertEqual(try api.request("PATCH", "/v1/ports/a", body: #"{"max_macs": 16}"#).status, 200)
        let refused = try api.request("PATCH", "/v1/ports/a", body: #"{"vlan": 20, "queues": 2}"#, contentType: "application/merge-patch+json")
        XCTAssertEqual(refused.status, 400)
        XCTAssertTrue(refused.errorMessage.contains("queues cannot be changed on a live port"), refused.errorMessage)

        let saved = try savedPort(daemon, "a")
        XCTAssertEqual(saved["vlan"] as? Int, 10)
        XCTAssertEqual(saved["allowed_macs"] as? [String], [frontEndMACs[0]])
        XCTAssertEqual(saved["rate_limit"] as? [String: Int], ["pps": 100000, "burst": 64])
        XCTAssertEqual(saved["max_macs"] as? Int, 16)
        XCTAssertEqual(try savedPort(daemon, "b")["max_macs"] as? Int, 32, "the config file's port is saved with the change")

        // The device was never touched: the same session, no connect or destroy event.
        let after = try device(api, "a")
        XCTAssertEqual(after.state, "ready")
        XCTAssertEqual(after.sessions, before.sessions)
        let later = try events(api, since: since)
        XCTAssertEqual(later.filter { $0.type.hasPrefix("device.") || $0.type.hasPrefix("vring.") }.map(\.type), [])
        let updates = later.filter { $0.type == "port.updated" }
        XCTAssertEqual(updates.map { $0.data["changed"] as? String }, ["vlan,allowed_macs,rate_limit", "max_macs"])
        XCTAssertEqual(updates.map(\.port), ["a", "a"])
        XCTAssertEqual(try frontEnd.linkStatus()[0], true)

        // Back to the defaults, live: traffic flows again on the same session.
        let reset = try api.request("PATCH", "/v1/ports/a", body: #"{"vlan": null, "allowed_macs": null, "rate_limit": null, "max_macs": null}"#,
                                    contentType: "application/merge-patch+json")
        XCTAssertEqual(reset.status, 200, reset.description)
        XCTAssertEqual(try api.request("PATCH", "/v1/ports/b", body: #"{"max_macs": null, "storm_control": null}"#).status, 200)
        try frontEnd.exchangeBothWays()
        XCTAssertEqual(try device(api, "a").sessions, before.sessions)

        // A restart restores what was saved (the config file's ports included).
        XCTAssertEqual(try api.request("PATCH", "/v1/ports/a", body: #"{"vlan": 30, "trunk": [40]}"#).status, 200)
        frontEnd.quit()
        XCTAssertEqual(daemon.stop(), 0)
        daemon = try SwitchDaemonProcess(extraArguments: ["--pmd-cpus", "1"], reuseDirectoriesOf: daemon)
        try daemon.waitUntilHealthy()
        let restored = try daemon.api.expect("GET", "/v1/ports/a", status: [200]).object
        XCTAssertEqual(restored["vlan"] as? Int, 30)
        XCTAssertEqual(restored["trunk"] as? [Int], [40])
        XCTAssertEqual(restored["allowed_macs"] is NSNull, true)
        print("[live-policy] PATCH on a connected port: 200, shown, saved, no reconnect (sessions \(after.sessions ?? -1)); restored after a restart")
    }

    /// "A PATCH takes effect within one burst" through REST, with traffic running on two poll
    /// threads (a's queue pinned to thread 0, b's to thread 1): testpmd forwards a <-> b (mac
    /// mode, frames circulating in both directions) when a is PATCHed to VLAN 10 and b stays on
    /// the default segment. Once the 200 is back no frame from a reaches b: b's
    /// switch.tx_packets, read right after the reply, has not moved 0.5 s later. (The
    /// circulating frames then die out, dropped in both directions.) PATCH vlan null: the pair
    /// exchanges frames again. Same session, no device events.
    func testVlanPatchHoldsFromItsReplyWithTrafficRunning() throws {
        if let reason = IntegrationEnvironment.printedSkipReason() { throw XCTSkip(reason) }
        if let reason = IntegrationEnvironment.printedDaemonSkipReason() { throw XCTSkip(reason) }
        let daemon = try SwitchDaemonProcess(config: """
            {"ports": [
              {"name": "a", "type": "vhost-user", "socket": {"path": "a.sock"}, "rxq_affinity": "0:0"},
              {"name": "b", "type": "vhost-user", "socket": {"path": "b.sock"}, "rxq_affinity": "0:1"}
            ]}
            """, extraArguments: ["--pmd-threads", "2"])
        defer { daemon.stop() }
        try daemon.waitUntilHealthy()
        let api = daemon.api
        let pair = try Testpmd.frontEnd(sockets: [daemon.socketPath("a.sock"), daemon.socketPath("b.sock")],
                                        macs: frontEndMACs, cpu: 0, forwardMode: "mac", burst: 32)
        defer { pair.quit() }
        try pair.waitForLinkUp(ports: [0, 1])
        try daemon.waitForLog("port=b [Dataplane] device ready")
        let threads = try api.expect("GET", "/v1/stats", status: [200]).object["poll_threads"] as? [[String: Any]] ?? []
        let placement = threads.map { ($0["queues"] as? [[String: Any]] ?? []).compactMap { $0["port"] as? String } }
        XCTAssertEqual(placement.map(Set.init), [["a"], ["b"]], "a's queue on poll thread 0, b's on 1: \(threads)")
        try pair.exchangeBothWays()  // both MACs learned
        func bReceived() throws -> Int { try api.portCounters()["b"]?["switch.tx_packets"] ?? -1 }
        try pair.start(txFirst: 16)
        let running = try bReceived()
        Thread.sleep(forTimeInterval: 0.3)
        XCTAssertGreaterThan(try bReceived() - running, 1000, "a -> b forwarding before the PATCH")
        let sessions = try device(api, "a").sessions
        let since = try lastEventID(api)

        let patched = try api.patchPort("a", ["vlan": 10])
        let atReply = try bReceived()
        XCTAssertEqual(patched.status, 200, patched.description)
        Thread.sleep(forTimeInterval: 0.5)
        let afterReply = try bReceived()
        XCTAssertEqual(afterReply - atReply, 0, "frames from a (now VLAN 10) reached b (default segment) after the PATCH's reply")
        let aSent = try api.portCounters()["a"]?["switch.rx_packets"] ?? -1
        print("[live-policy] b's switch.tx_packets at the reply \(atReply), 0.5 s later \(afterReply); a's switch.rx_packets \(aSent)")

        XCTAssertEqual(try api.patchPort("a", ["vlan": NSNull()]).status, 200)
        try pair.stop()
        let resumed = try bReceived()
        try pair.exchangeBothWays()
        XCTAssertGreaterThan(try bReceived() - resumed, 0, "a -> b again once a is back on the default segment")
        XCTAssertEqual(try device(api, "a").sessions, sessions, "a's session is the same")
        XCTAssertEqual(try events(api, since: since).filter { $0.type.hasPrefix("device.") || $0.type.hasPrefix("vring.") }.map(\.type), [])
        XCTAssertEqual(pair.quit(), 0)
        XCTAssertEqual(daemon.stop(), 0, String(daemon.output.suffix(4000)))
    }
}
