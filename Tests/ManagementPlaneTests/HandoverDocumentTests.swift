import Dataplane
import ManagementPlane
import VhostUser
import Virtio
import XCTest

/// The live hand-over's state document: a round trip through JSON, the previous version read
/// by this binary, and each field a peer could get wrong refused with its name.
final class HandoverDocumentTests: XCTestCase {
    private static func sample() -> HandoverDocument {
        var spec = PortSpec(name: "vm1", kind: .vhostUser(PortSpec.VhostUser(socketPath: "vm1.sock")))
        if case .vhostUser(var vhost) = spec.kind {
            vhost.featureMask = VhostUserDevice.defaultOfferedFeatures
            spec.kind = .vhostUser(vhost)
        }
        let session = VhostUserSessionExport(
            socket: 1, offeredFeatures: VhostUserDevice.defaultOfferedFeatures, negotiatedFeatures: 0x1_7000_0000,
            negotiatedProtocolFeatures: 0x4b, status: 0xf, mtu: 1500,
            memoryRegions: [.init(region: .init(guestPhysicalAddress: 0, size: 1 << 30, userspaceAddress: 0x7f00_0000_0000, mmapOffset: 0),
                                  descriptor: 2)],
            dirtyLog: .init(descriptor: 3, size: 4096, offset: 0),
            vrings: [
                .init(index: 0, size: 256, addresses: .init(flags: 1, descriptor: 0x1000, used: 0x3000, avail: 0x2000, log: 0x3000),
                      position: .init(lastAvailIndex: 65535, lastUsedIndex: 65534), enabled: true, started: true, kick: 4, call: nil),
                .init(index: 1, size: 100, position: .init(lastAvailIndex: 7, lastUsedIndex: 7, availWrapCounter: false, usedWrapCounter: true),
                      enabled: nil, started: true, kick: nil, call: 5, err: 6),
            ])
        let device = VhostUserDeviceExport(name: "vm1", listener: 0, session: session, sessions: 3, refusedRequests: 2,
                                           sessionsClosedOnError: 1, guestFaults: 0)
        return HandoverDocument(
            descriptorCount: 9, eventSequence: 41, quiescedAtNanoseconds: 123_456_789_000,
            api: .init(unix: 7, tcp: 8, metrics: nil),
            ports: [.init(spec: spec, device: device), .init(spec: PortSpec(name: "eth", kind: .afPacket(interface: "veth0")))],
            pendingPorts: [PortSpec(name: "later", kind: .afPacket(interface: "veth9"))],
            macTable: [.init(mac: 0x0200_0000_0001, segment: 0, port: "vm1")])
    }

    private func roundTrip(_ document: HandoverDocument) throws -> HandoverDocument {
        let text = HandoverDocumentEncoder.encode(document).rendered()
        return try HandoverDocumentDecoder.decode(try JSON.parse(text))
    }

    func testRoundTrip() throws {
        let document = Self.sample()
        XCTAssertEqual(try roundTrip(document), document)
    }

    /// A version 1 document as a version 1 binary wrote it (kept as text: the format it
    /// fixes must stay readable while this binary accepts version 1).
    func testVersionOneFixtureAccepted() throws {
        let fixture = """
        {"version": 1, "descriptor_count": 3, "event_sequence": 12, "quiesced_at_ns": "0x10",
         "api": {"unix": 2, "tcp": null, "metrics": null},
         "ports": [{"spec": {"name": "a", "type": "vhost-user", "socket": {"path": "a.sock", "mode": "server"}, "queues": 1},
                    "device": {"name": "a", "listener": 0, "sessions": 1, "refused_requests": 0, "sessions_closed_on_error": 0,
                               "guest_faults": 0,
                               "session": {"socket": 1, "offered_features": "0x140000000", "negotiated_features": "0x100000000",
                                           "negotiated_protocol_features": null, "status": 0, "mtu": null, "memory": [],
                                           "dirty_log": null, "vrings": [{"index": 0, "size": 256, "addresses": null, "position": null,
                                                                          "enabled": null, "started": false, "kick": null, "call": null,
                                                                          "err": null}]}}}],
         "mac_table": [{"mac": "0x020000000002", "segment": 5, "port": "a"}]}
        """
        let document = try HandoverDocumentDecoder.decode(try JSON.parse(fixture))
        XCTAssertEqual(document.version, 1)
        XCTAssertEqual(document.eventSequence, 12)
        XCTAssertEqual(document.ports.first?.device?.session?.negotiatedFeatures, 0x1_0000_0000)
        XCTAssertEqual(document.ports.first?.device?.session?.vrings.first?.size, 256)
        XCTAssertEqual(document.macTable, [.init(mac: 0x0200_0000_0002, segment: 5, port: "a")])
        XCTAssertTrue(HandoverDocumentDecoder.acceptedVersions.contains(1))
    }

    /// Sets `path` (keys and list indices) in the sample's JSON to `value` and expects a
    /// refusal naming `expected`.
    private func assertRefused(_ path: [Any], _ value: JSON?, _ expected: String, line: UInt = #line) {
        func replace(_ json: JSON, _ path: ArraySlice<Any>) -> JSON {
            guard let head = path.first else { return value ?? .null }
            switch (json, head) {
            case (.object(var object), let key as String):
                if path.count == 1 && value == nil { object[key] = nil } else { object[key] = replace(object[key] ?? .null, path.dropFirst()) }
                return .object(object)
            case (.array(var items), let index as Int):
                items[index] = replace(items[index], path.dropFirst())
                return .array(items)
            default:
                XCTFail("no \(head) in the sample", line: line)
                return json
            }
        }
        let changed = replace(HandoverDocumentEncoder.encode(Self.sample()), path[...])
        XCTAssertThrowsError(try HandoverDocumentDecoder.decode(changed), line: line) { error in
            XCTAssertTrue("\(error)".contains(expected), "\(error) does not mention \(expected)", line: line)
        }
    }

    func testEachInvalidFieldRefused() {
        let session: [Any] = ["ports", 0, "device", "session"]
        assertRefused(["version"], .integer(2), "version 2")
        assertRefused(["version"], .integer(0), "version 0")
        assertRefused(["version"], nil, "version is required")
        assertRefused(["descriptor_count"], .integer(-1), "descriptor_count")
        assertRefused(["event_sequence"], .string("x"), "event_sequence must be an integer")
        assertRefused(["quiesced_at_ns"], .string("0xzz"), "quiesced_at_ns must be a hex string")
        assertRefused(["api", "unix"], .integer(9), "api.unix 9 outside")
        assertRefused(["ports", 0, "spec", "type"], .string("tap"), "ports[0].spec")
        assertRefused(["ports", 0, "device", "name"], .string("vm2"), "named vm2")
        assertRefused(["ports", 0, "device", "listener"], .integer(-1), "listener -1 outside")
        assertRefused(["ports", 0, "device", "sessions"], .integer(-3), "sessions -3 outside")
        assertRefused(session + ["socket"], nil, "socket is required")
        assertRefused(session + ["offered_features"], .integer(5), "offered_features must be a hex string")
        assertRefused(session + ["negotiated_features"], .string("0x1ffffffffffffffff"), "negotiated_features")
        assertRefused(session + ["status"], .integer(256), "status 256 outside")
        assertRefused(session + ["mtu"], .integer(70000), "mtu 70000 outside")
        assertRefused(session + ["memory", 0, "fd"], .integer(9), "memory[0].fd 9 outside")
        assertRefused(session + ["memory", 0, "gpa"], nil, "memory[0].gpa is required")
        assertRefused(session + ["dirty_log", "size"], .bool(true), "dirty_log.size must be a hex string")
        assertRefused(session + ["vrings", 0, "index"], .integer(256), "vrings[0].index 256 outside")
        assertRefused(session + ["vrings", 0, "size"], .integer(0), "vrings[0].size 0 outside")
        assertRefused(session + ["vrings", 0, "size"], .integer(32769), "vrings[0].size 32769 outside")
        assertRefused(session + ["vrings", 0, "addresses", "flags"], .integer(-1), "flags -1 outside")
        assertRefused(session + ["vrings", 0, "position", "last_avail_index"], .integer(65536), "last_avail_index 65536 outside")
        assertRefused(session + ["vrings", 0, "position", "last_used_index"], .integer(-1), "last_used_index -1 outside")
        assertRefused(session + ["vrings", 1, "position", "avail_wrap_counter"], .integer(1), "avail_wrap_counter must be true or false")
        assertRefused(session + ["vrings", 0, "started"], nil, "started is required")
        assertRefused(session + ["vrings", 0, "kick"], .integer(99), "kick 99 outside")
        assertRefused(session + ["vrings", 1, "call"], .string("5"), "call must be an integer")
        assertRefused(["mac_table", 0, "mac"], .string("0x1000000000000"), "48-bit")
        assertRefused(["mac_table", 0, "segment"], .integer(4095), "segment 4095 outside")
        assertRefused(["ports"], .object([:]), "ports must be a list")
        assertRefused(["pending_ports", 0, "interface"], .string("a/b"), "pending_ports[0]")
    }
}
