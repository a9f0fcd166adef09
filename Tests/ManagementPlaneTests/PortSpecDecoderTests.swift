import XCTest
import Dataplane
import VhostSystem
@testable import ManagementPlane

final class PortSpecDecoderTests: XCTestCase {
    func decode(_ text: String) throws -> PortSpec { try PortSpecDecoder.decode(try JSON.parse(text)) }

    func expectError(_ text: String, containing fragment: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try decode(text), file: file, line: line) { error in
            XCTAssertTrue("\(error)".contains(fragment), "\(error) does not mention \(fragment)", file: file, line: line)
        }
    }

    func testFullVhostUserPort() throws {
        let spec = try decode(#"""
        {"name": "vm1", "type": "vhost-user", "queues": 2, "mtu": 9000, "mac": "02:AA:00:00:00:01",
         "socket": {"path": "vm1.sock", "mode": "client", "owner": "qemu", "group": "kvm", "permissions": "0660"},
         "features": {"disable": ["mrg_rxbuf"], "enable": ["event_idx"]}}
        """#)
        XCTAssertEqual(spec.name, "vm1")
        guard case .vhostUser(let vhost) = spec.kind else { return XCTFail("kind") }
        XCTAssertEqual(vhost.socketPath, "vm1.sock")
        XCTAssertEqual(vhost.mode, .client)
        XCTAssertEqual(vhost.permissions, 0o660)
        XCTAssertEqual(vhost.queuePairs, 2)
        XCTAssertEqual(vhost.mtu, 9000)
        XCTAssertEqual(vhost.mac, "02:aa:00:00:00:01")
        XCTAssertEqual(vhost.disableFeatures, ["mrg_rxbuf"])
        XCTAssertEqual(vhost.enableFeatures, ["event_idx"])
    }

    func testQueuesUpTo128() throws {
        let spec = try decode(#"{"name": "a", "type": "vhost-user", "socket": {"path": "x"}, "queues": 128}"#)
        guard case .vhostUser(let vhost) = spec.kind else { return XCTFail("kind") }
        XCTAssertEqual(vhost.queuePairs, 128)
    }

    func testAfPacketPort() throws {
        let spec = try decode(#"{"name": "uplink", "type": "af-packet", "interface": "eth0"}"#)
        XCTAssertEqual(spec.kind, .afPacket(interface: "eth0"))
    }

    func testAfXdpPortWithDefaultsAndSettingsRoundTrips() throws {
        let plain = try decode(#"{"name": "fast", "type": "af-xdp", "interface": "eth1"}"#)
        XCTAssertEqual(plain.kind, .afXdp(PortSpec.AfXdp(interface: "eth1", queue: 0, mode: .auto)))
        XCTAssertEqual(plain.policy.maxMACs, PortPolicy.defaultKernelPortMaxMACs, "a kernel port's default")
        let set = try decode(#"{"name": "fast", "type": "af-xdp", "interface": "eth1", "queue": 3, "queues": 4, "mode": "native", "vlan": 10}"#)
        XCTAssertEqual(set.kind, .afXdp(PortSpec.AfXdp(interface: "eth1", queue: 3, queues: 4, mode: .native)))
        XCTAssertEqual(set.policy.vlan, 10)
        XCTAssertEqual(try PortSpecDecoder.decode(PortSpecEncoder.encode(set)), set, "the state file reads back what it saved")
        let generic = try decode(#"{"name": "g", "type": "af-xdp", "interface": "lo", "mode": "generic"}"#)
        XCTAssertEqual(try PortSpecDecoder.decode(PortSpecEncoder.encode(generic)), generic)
        expectError(#"{"name": "a", "type": "af-xdp"}"#, containing: "interface is required")
        expectError(#"{"name": "a", "type": "af-xdp", "interface": "a/b"}"#, containing: "interface must")
        expectError(#"{"name": "a", "type": "af-xdp", "interface": "x", "queue": -1}"#, containing: "queue must be an integer from 0 to 255")
        expectError(#"{"name": "a", "type": "af-xdp", "interface": "x", "queue": 256}"#, containing: "queue must be")
        expectError(#"{"name": "a", "type": "af-xdp", "interface": "x", "queue": "1"}"#, containing: "queue must be")
        expectError(#"{"name": "a", "type": "af-xdp", "interface": "x", "mode": "hw"}"#, containing: "mode must be")
        expectError(#"{"name": "a", "type": "af-xdp", "interface": "x", "queues": 0}"#, containing: "queues must be an integer from 1 to 64")
        expectError(#"{"name": "a", "type": "af-xdp", "interface": "x", "queues": 65}"#, containing: "queues must be")
        expectError(#"{"name": "a", "type": "af-xdp", "interface": "x", "socket": {"path": "s"}}"#, containing: "unknown field \"socket\"")
        expectError(#"{"name": "a", "type": "af-packet", "interface": "x", "mode": "native"}"#, containing: "unknown field \"mode\"")
    }

    func testPreciseErrors() {
        expectError(#"{"type": "vhost-user"}"#, containing: "name is required")
        expectError(#"{"name": 5, "type": "vhost-user"}"#, containing: "name must be a string")
        expectError(#"{"name": "a/b", "type": "af-packet", "interface": "x"}"#, containing: "letters, digits")
        expectError(#"{"name": "a", "type": "tap"}"#, containing: "type must be")
        expectError(#"{"name": "a", "type": "vhost-user"}"#, containing: "socket is required")
        expectError(#"{"name": "a", "type": "vhost-user", "socket": {"path": "x", "mode": "both"}}"#, containing: "socket.mode")
        expectError(#"{"name": "a", "type": "vhost-user", "socket": {"path": "x"}, "queues": 0}"#, containing: "queues must be")
        expectError(#"{"name": "a", "type": "vhost-user", "socket": {"path": "x"}, "queues": 129}"#, containing: "queues must be an integer from 1 to 128")
        expectError(#"{"name": "a", "type": "vhost-user", "socket": {"path": "x"}, "mtu": 67}"#, containing: "mtu must be")
        expectError(#"{"name": "a", "type": "vhost-user", "socket": {"path": "x"}, "mac": "nope"}"#, containing: "mac must")
        // null is not "left out" for these keys (the description has no null for them).
        expectError(#"{"name": "a", "type": "vhost-user", "socket": {"path": "x"}, "mac": null}"#, containing: "mac must be a string")
        expectError(#"{"name": "a", "type": "vhost-user", "socket": {"path": "x", "owner": null}}"#, containing: "socket.owner must be a string")
        expectError(#"{"name": "a", "type": "af-xdp", "interface": "x", "mode": null}"#, containing: "mode must be a string")
        expectError(#"{"name": "a", "type": "vhost-user", "socket": {"path": "x", "permissions": 432}}"#, containing: "octal string")
        expectError(#"{"name": "a", "type": "vhost-user", "socket": {"path": "x"}, "colour": 1}"#, containing: "unknown field \"colour\"")
        expectError(#"{"name": "a", "type": "vhost-user", "socket": {"path": "x", "perm": 1}}"#, containing: "unknown field \"perm\" in socket")
        expectError(#"{"name": "a", "type": "vhost-user", "socket": {"path": "x"}, "features": {"disable": [1]}}"#, containing: "only strings")
        expectError(#"{"name": "a", "type": "vhost-user", "socket": {"path": "x", "permissions": "999"}}"#, containing: "octal")
        expectError(#"{"name": "a", "type": "af-packet", "interface": "a/b"}"#, containing: "interface must")
        expectError(#"[1]"#, containing: "must be a JSON object")
    }
}
