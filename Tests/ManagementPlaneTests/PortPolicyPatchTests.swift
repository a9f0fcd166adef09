import Dataplane
import Foundation
import Logging
import PortService
import VhostUser
import XCTest
@testable import ManagementPlane

/// PATCH /v1/ports/{name} (issue 18): JSON merge patch semantics on the port's policy, through
/// the real API, service, switch and state store in this process (no daemon, no root).
final class PortPolicyPatchTests: XCTestCase {
    private var directory: String!
    private var fabric: Switch!
    private var controlLoop: VhostUserControlLoop!
    private var service: PortService!
    private var events: EventHub!
    private var store: PortStateStore!
    private var api: ManagementAPI!

    override func setUpWithError() throws {
        directory = NSTemporaryDirectory() + "policy-patch-" + String(UInt32.random(in: 0...UInt32.max), radix: 36)
        try FileManager.default.createDirectory(atPath: directory + "/sockets", withIntermediateDirectories: true)
        let logger = Logger(label: "policy-patch-test")
        fabric = try Switch()
        controlLoop = try VhostUserControlLoop(logger: logger)
        events = EventHub()
        service = PortService(fabric: fabric, controlLoop: controlLoop, socketDirectory: SocketDirectory(root: directory + "/sockets"),
                              logger: logger, emit: events.handler)
        store = PortStateStore(directory: directory + "/state", logger: logger)
        service.addObserver(store)
        api = ManagementAPI(service: service, events: events, logger: logger)
        XCTAssertEqual(send("POST", "/v1/ports", #"{"name": "vm", "type": "vhost-user", "socket": {"path": "vm.sock"}}"#).status, 201)
    }

    override func tearDown() {
        service?.deleteAll()
        controlLoop?.shutdown()
        if let directory { try? FileManager.default.removeItem(atPath: directory) }
    }

    private struct Reply {
        var status: Int
        var json: JSON
        var errorCode: String? { json["error"]?["code"]?.stringValue }
        var errorMessage: String { json["error"]?["message"]?.stringValue ?? "" }
    }

    private func send(_ method: String, _ path: String, _ body: String? = nil) -> Reply {
        let response = api.handle(HTTPRequest(method: method, path: path, body: Array((body ?? "").utf8)))
        guard case .bytes(let bytes) = response.body else { XCTFail("not a JSON reply"); return Reply(status: response.status, json: .null) }
        return Reply(status: response.status, json: bytes.isEmpty ? .null : (try? JSON.parse(bytes)) ?? .null)
    }

    private func patch(_ body: String) -> Reply { send("PATCH", "/v1/ports/vm", body) }

    private var policy: PortPolicy { service.port(named: "vm")?.spec.policy ?? PortPolicy() }

    private var savedPolicy: PortPolicy? { store.load().specs.first { $0.name == "vm" }?.policy }

    private var updates: [EventHub.Event] { events.history(filter: .init(types: [.portUpdated])) }

    func testSettingKeysAppliesShowsPersistsAndTellsWhatChanged() {
        let reply = patch(#"{"vlan": 10, "allowed_macs": ["02:00:00:00:00:0A"], "rate_limit": {"pps": 1000, "burst": 32}}"#)
        XCTAssertEqual(reply.status, 200, "\(reply.json)")
        XCTAssertEqual(reply.json["vlan"], 10)
        XCTAssertEqual(reply.json["allowed_macs"], ["02:00:00:00:00:0a"])
        XCTAssertEqual(reply.json["rate_limit"], ["pps": 1000, "burst": 32])
        XCTAssertEqual(reply.json["max_macs"], 64, "untouched keys keep their values")
        XCTAssertEqual(reply.json["trunk"], [])
        XCTAssertEqual(reply.json["name"], "vm")
        XCTAssertEqual(send("GET", "/v1/ports/vm").json, reply.json)

        var expected = PortPolicy()
        expected.vlan = 10
        expected.allowedMACs = [0x0200_0000_000A]
        expected.rateLimit = .init(pps: 1000, burst: 32)
        XCTAssertEqual(policy, expected)
        XCTAssertEqual(savedPolicy, expected)
        XCTAssertEqual(updates.count, 1)
        XCTAssertEqual(updates.first?.event.port, "vm")
        XCTAssertEqual(updates.first?.event.data["changed"], .string("vlan,allowed_macs,rate_limit"))

        // The same values again change nothing: no event.
        XCTAssertEqual(patch(#"{"vlan": 10}"#).status, 200)
        XCTAssertEqual(patch("{}").status, 200)
        XCTAssertEqual(updates.count, 1)
    }

    /// rxq_affinity is a policy key like the others: set live, shown, saved, announced, reset by null.
    func testRxqAffinityIsSetLiveAndResetByNull() {
        let reply = patch(#"{"rxq_affinity": "0:0"}"#)
        XCTAssertEqual(reply.status, 200, "\(reply.json)")
        XCTAssertEqual(reply.json["rxq_affinity"], "0:0")
        XCTAssertEqual(policy.rxqAffinity, [0: 0])
        XCTAssertEqual(savedPolicy?.rxqAffinity, [0: 0])
        XCTAssertEqual(updates.last?.event.data["changed"], .string("rxq_affinity"))
        XCTAssertEqual(patch(#"{"rxq_affinity": null}"#).json["rxq_affinity"], .null)
        XCTAssertEqual(policy.rxqAffinity, [:])
    }

    func testNullResetsAKeyToItsDefault() {
        XCTAssertEqual(patch(#"{"vlan": 5, "trunk": [6, 7], "allowed_macs": [], "max_macs": 3, "rate_limit": {"pps": 1, "burst": 1}, "storm_control": {"broadcast_pps": 0}}"#).status, 200)
        XCTAssertEqual(policy.maxMACs, 3)
        let reply = patch(#"{"vlan": null, "trunk": null, "allowed_macs": null, "max_macs": null, "rate_limit": null, "storm_control": null}"#)
        XCTAssertEqual(reply.status, 200, "\(reply.json)")
        XCTAssertEqual(policy, PortPolicy())
        XCTAssertEqual(savedPolicy, PortPolicy())
        XCTAssertEqual(reply.json["vlan"], .null)
        XCTAssertEqual(reply.json["trunk"], [])
        XCTAssertEqual(reply.json["max_macs"], 64)
        XCTAssertEqual(updates.last?.event.data["changed"], .string("vlan,trunk,allowed_macs,max_macs,rate_limit,storm_control"))
    }

    /// RFC 7396: objects merge member by member; a member set to null goes.
    func testObjectsMergeMemberByMember() {
        XCTAssertEqual(patch(#"{"rate_limit": {"pps": 100, "burst": 10}, "storm_control": {"broadcast_pps": 1, "multicast_pps": 2}}"#).status, 200)
        XCTAssertEqual(patch(#"{"rate_limit": {"pps": 500}, "storm_control": {"multicast_pps": null, "unknown_unicast_pps": 3}}"#).status, 200)
        XCTAssertEqual(policy.rateLimit, .init(pps: 500, burst: 10))
        XCTAssertEqual(policy.stormControl, .init(broadcastPPS: 1, unknownUnicastPPS: 3))
        // Removing the last limit leaves no storm control; a list is replaced whole.
        XCTAssertEqual(patch(#"{"storm_control": {"broadcast_pps": null, "unknown_unicast_pps": null}, "trunk": [9]}"#).status, 200)
        XCTAssertNil(policy.stormControl)
        XCTAssertEqual(patch(#"{"trunk": [11, 10]}"#).json["trunk"], [10, 11])
        // A partial rate limit on a port without one is incomplete.
        XCTAssertEqual(patch(#"{"rate_limit": null}"#).status, 200)
        let partial = patch(#"{"rate_limit": {"pps": 5}}"#)
        XCTAssertEqual(partial.status, 400)
        XCTAssertTrue(partial.errorMessage.contains("rate_limit.burst is required"), partial.errorMessage)
    }

    func testOtherKeysAreRefusedNamingThem() {
        for (body, code, fragment) in [
            (#"{"mtu": 9000}"#, "immutable_field", "mtu cannot be changed on a live port; delete and create the port"),
            (#"{"vlan": 10, "socket": {"path": "x.sock"}}"#, "immutable_field", "socket cannot be changed on a live port"),
            (#"{"name": "other"}"#, "immutable_field", "name cannot be changed"),
            (#"{"interface": "eth1"}"#, "immutable_field", "interface cannot be changed"),
            (#"{"id": 3}"#, "immutable_field", "id cannot be changed"),
            (#"{"features": {"mask": "0x1"}}"#, "immutable_field", "/v1/ports/{name}/features"),
            (#"{"vlan": 10, "colour": "red"}"#, "unknown_field", "unknown field \"colour\""),
        ] {
            let reply = patch(body)
            XCTAssertEqual(reply.status, 400, body)
            XCTAssertEqual(reply.errorCode, code, body)
            XCTAssertTrue(reply.errorMessage.contains(fragment), "\(body): \(reply.errorMessage)")
        }
        XCTAssertEqual(policy, PortPolicy(), "a refused patch changes nothing, not even its valid keys")
        XCTAssertTrue(updates.isEmpty)
    }

    func testAnInvalidValueLeavesEverythingAsItWas() throws {
        XCTAssertEqual(patch(#"{"vlan": 10, "max_macs": 5}"#).status, 200)
        let before = policy
        func stateBytes() throws -> [Data] {
            try [store.path, store.journalPath].map { FileManager.default.fileExists(atPath: $0) ? try Data(contentsOf: URL(fileURLWithPath: $0)) : Data() }
        }
        let savedBytes = try stateBytes()
        let eventCount = events.nextID
        for (body, fragment) in [
            (#"{"vlan": 20, "max_macs": 0}"#, "max_macs must be"),
            (#"{"vlan": 4095}"#, "vlan must be"),
            (#"{"trunk": [10]}"#, "trunk must not list the native vlan 10"),
            (#"{"allowed_macs": ["01:00:00:00:00:01"], "vlan": 30}"#, "unicast"),
            (#"{"rate_limit": {"pps": 0, "burst": 1}}"#, "rate_limit.pps"),
            (#"{"storm_control": {"broadcast_pps": "lots"}}"#, "storm_control.broadcast_pps"),
            (#"{"storm_control": {"flood_pps": 1}}"#, "unknown field \"flood_pps\" in storm_control"),
            (#"{"rxq_affinity": "1:0"}"#, "rxq_affinity queue 1 is not below the port's 1 queues"),
            (#"{"rxq_affinity": "0:1"}"#, "rxq_affinity thread 1 is not below the 1 poll threads"),
        ] {
            let reply = patch(body)
            XCTAssertEqual(reply.status, 400, body)
            XCTAssertEqual(reply.errorCode, "invalid_policy", body)
            XCTAssertTrue(reply.errorMessage.contains(fragment), "\(body): \(reply.errorMessage)")
        }
        XCTAssertEqual(policy, before)
        XCTAssertEqual(try stateBytes(), savedBytes, "neither the state file nor its journal is written")
        XCTAssertEqual(events.nextID, eventCount, "no event")
    }

    func testUnknownPortAndBodiesThatAreNotAPatchObject() {
        let missing = send("PATCH", "/v1/ports/nope", #"{"vlan": 10}"#)
        XCTAssertEqual(missing.status, 404)
        XCTAssertEqual(missing.errorCode, "port_not_found")
        XCTAssertEqual(send("PATCH", "/v1/ports/nope", "[1]").status, 404, "the port is looked up before the body")
        for body in ["[1]", "10", "null", "", "{"] {
            let reply = patch(body)
            XCTAssertEqual(reply.status, 400, body)
        }
        XCTAssertEqual(policy, PortPolicy())
    }

    /// Create with the keys, restart (a new service restored from the state file): they are back.
    func testPolicyRoundTripsThroughCreateStateFileAndRestore() {
        let created = send("POST", "/v1/ports", #"""
            {"name": "tenant", "type": "vhost-user", "socket": {"path": "tenant.sock"}, "vlan": 100, "trunk": [200, 300],
             "allowed_macs": ["02:00:00:00:01:00"], "max_macs": 16, "rate_limit": {"pps": 20000, "burst": 256},
             "storm_control": {"broadcast_pps": 50, "multicast_pps": 500, "unknown_unicast_pps": 1000}}
            """#)
        XCTAssertEqual(created.status, 201, "\(created.json)")
        XCTAssertEqual(patch(#"{"trunk": [4000]}"#).status, 200)
        let expectedTenant = service.port(named: "tenant")?.spec.policy
        XCTAssertEqual(expectedTenant?.vlan, 100)
        XCTAssertEqual(expectedTenant?.stormControl, .init(broadcastPPS: 50, multicastPPS: 500, unknownUnicastPPS: 1000))
        let createdJSON = created.json.objectValue ?? [:]
        XCTAssertEqual(createdJSON["rate_limit"], ["pps": 20000, "burst": 256])

        service.deleteAll()
        let logger = Logger(label: "policy-patch-test")
        let restarted = PortService(fabric: fabric, controlLoop: controlLoop, socketDirectory: service.socketDirectory, logger: logger)
        XCTAssertEqual(StateRestorer.restore(from: store, into: restarted, logger: logger), ["vm", "tenant"])
        XCTAssertEqual(restarted.port(named: "tenant")?.spec.policy, expectedTenant)
        XCTAssertEqual(restarted.port(named: "vm")?.spec.policy.trunk, [4000])
        restarted.deleteAll()
    }
}
