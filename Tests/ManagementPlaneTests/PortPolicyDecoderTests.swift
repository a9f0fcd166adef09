import Dataplane
import Foundation
import XCTest
@testable import ManagementPlane

/// The policy keys of a port's JSON (issue 18): each field valid and invalid, for both port
/// types, and the one shape they are written in.
final class PortPolicyDecoderTests: XCTestCase {
    private func vhostUser(_ members: String) throws -> PortSpec {
        try PortSpecDecoder.decode(try JSON.parse(#"{"name": "p", "type": "vhost-user", "socket": {"path": "p.sock"}"# + members + "}"))
    }

    private func afPacket(_ members: String) throws -> PortSpec {
        try PortSpecDecoder.decode(try JSON.parse(#"{"name": "up", "type": "af-packet", "interface": "eth0""# + members + "}"))
    }

    private func expectError(_ members: String, containing fragment: String, file: StaticString = #filePath, line: UInt = #line) {
        for decode in [vhostUser, afPacket] {
            XCTAssertThrowsError(try decode(members), file: file, line: line) { error in
                XCTAssertTrue("\(error)".contains(fragment), "\(members): \"\(error)\" does not mention \(fragment)", file: file, line: line)
            }
        }
    }

    func testEveryKeyOnBothPortTypes() throws {
        let members = #"""
        , "vlan": 10, "trunk": [30, 20], "allowed_macs": ["02:AA:00:00:00:01", "02:00:00:00:00:02"], "max_macs": 8,
          "rate_limit": {"pps": 1000, "burst": 64},
          "storm_control": {"broadcast_pps": 100, "multicast_pps": 0, "unknown_unicast_pps": 50}
        """#
        var expected = PortPolicy()
        expected.vlan = 10
        expected.trunk = [20, 30]
        expected.allowedMACs = [0x02AA_0000_0001, 0x0200_0000_0002]
        expected.maxMACs = 8
        expected.rateLimit = .init(pps: 1000, burst: 64)
        expected.stormControl = .init(broadcastPPS: 100, multicastPPS: 0, unknownUnicastPPS: 50)
        XCTAssertEqual(try vhostUser(members).policy, expected)
        XCTAssertEqual(try afPacket(members).policy, expected)
    }

    func testLeftOutOrNullIsTheDefault() throws {
        XCTAssertEqual(try vhostUser("").policy, PortPolicy())
        let nulls = #", "vlan": null, "trunk": null, "allowed_macs": null, "max_macs": null, "rate_limit": null, "storm_control": null"#
        XCTAssertEqual(try vhostUser(nulls).policy, PortPolicy())
        XCTAssertEqual(try vhostUser("").policy.maxMACs, 64)
        // A kernel port is an uplink with a LAN behind it: its MAC limit defaults to the table's.
        var kernelDefault = PortPolicy()
        kernelDefault.maxMACs = 8192
        XCTAssertEqual(try afPacket(nulls).policy, kernelDefault)
        XCTAssertEqual(try afPacket("").policy, kernelDefault)
        XCTAssertEqual(try ManagementAPI.merge(["max_macs": .null], into: PortPolicy(), defaults: PortPolicy(defaultFor: .afPacket(interface: "eth0"))).maxMACs,
                       8192, "a PATCH null resets to the port type's default")
    }

    func testEdgeValues() throws {
        XCTAssertEqual(try vhostUser(#", "vlan": 1"#).policy.vlan, 1)
        XCTAssertEqual(try vhostUser(#", "vlan": 4094"#).policy.vlan, 4094)
        XCTAssertEqual(try vhostUser(#", "trunk": [4094, 1]"#).policy.trunk, [1, 4094])
        XCTAssertEqual(try vhostUser(#", "max_macs": 1"#).policy.maxMACs, 1)
        XCTAssertEqual(try vhostUser(#", "max_macs": 8192"#).policy.maxMACs, 8192)
        XCTAssertEqual(try vhostUser(#", "rate_limit": {"pps": 1, "burst": 1}"#).policy.rateLimit, .init(pps: 1, burst: 1))
        // An empty list allows no source MAC at all; a repeated MAC counts once.
        XCTAssertEqual(try vhostUser(#", "allowed_macs": []"#).policy.allowedMACs, [])
        XCTAssertEqual(try vhostUser(#", "allowed_macs": ["02:00:00:00:00:01", "02:00:00:00:00:01"]"#).policy.allowedMACs, [0x0200_0000_0001])
        let sixtyFour = (1...64).map { "\"02:00:00:00:00:\(String(format: "%02x", $0))\"" }.joined(separator: ",")
        XCTAssertEqual(try vhostUser(#", "allowed_macs": ["# + sixtyFour + "]").policy.allowedMACs?.count, 64)
        // Storm control: each limit optional; an object with none is no storm control.
        XCTAssertEqual(try vhostUser(#", "storm_control": {"broadcast_pps": 5}"#).policy.stormControl, .init(broadcastPPS: 5))
        XCTAssertNil(try vhostUser(#", "storm_control": {}"#).policy.stormControl)
        XCTAssertNil(try vhostUser(#", "storm_control": {"multicast_pps": null}"#).policy.stormControl)
    }

    func testEachFieldRefusesWrongValuesNamingIt() {
        expectError(#", "vlan": 0"#, containing: "vlan must be an integer from 1 to 4094")
        expectError(#", "vlan": 4095"#, containing: "vlan must be")
        expectError(#", "vlan": "10""#, containing: "vlan must be")
        expectError(#", "vlan": 10.5"#, containing: "vlan must be")
        expectError(#", "trunk": 10"#, containing: "trunk must be a list")
        expectError(#", "trunk": [0]"#, containing: "trunk must contain only integers from 1 to 4094")
        expectError(#", "trunk": [4095]"#, containing: "trunk must contain")
        expectError(#", "trunk": ["20"]"#, containing: "trunk must contain")
        expectError(#", "trunk": [20, 30, 20]"#, containing: "trunk lists a VLAN twice")
        expectError(#", "vlan": 20, "trunk": [20, 30]"#, containing: "trunk must not list the native vlan 20")
        expectError(#", "allowed_macs": "02:00:00:00:00:01""#, containing: "allowed_macs must be a list")
        expectError(#", "allowed_macs": ["02:00:00:00:00"]"#, containing: "allowed_macs must contain only MACs")
        expectError(#", "allowed_macs": [2]"#, containing: "allowed_macs must contain only MACs")
        expectError(#", "allowed_macs": ["+2:00:00:00:00:01"]"#, containing: "allowed_macs must contain only MACs")
        expectError(#", "allowed_macs": ["01:00:5e:00:00:01"]"#, containing: "allowed_macs must list unicast MACs")
        expectError(#", "allowed_macs": ["ff:ff:ff:ff:ff:ff"]"#, containing: "unicast")
        let sixtyFive = (1...65).map { "\"02:00:00:00:00:\(String(format: "%02x", $0))\"" }.joined(separator: ",")
        expectError(#", "allowed_macs": ["# + sixtyFive + "]", containing: "allowed_macs lists more than 64 MACs")
        expectError(#", "max_macs": 0"#, containing: "max_macs must be an integer from 1 to 8192")
        expectError(#", "max_macs": 8193"#, containing: "max_macs must be")
        expectError(#", "max_macs": "64""#, containing: "max_macs must be")
        expectError(#", "rate_limit": 1000"#, containing: "rate_limit must be an object")
        expectError(#", "rate_limit": {"pps": 1000}"#, containing: "rate_limit.burst is required")
        expectError(#", "rate_limit": {"burst": 10}"#, containing: "rate_limit.pps is required")
        expectError(#", "rate_limit": {"pps": 0, "burst": 10}"#, containing: "rate_limit.pps must be an integer of at least 1")
        expectError(#", "rate_limit": {"pps": 10, "burst": 0}"#, containing: "rate_limit.burst must be")
        expectError(#", "rate_limit": {"pps": "10", "burst": 5}"#, containing: "rate_limit.pps must be")
        expectError(#", "storm_control": [1]"#, containing: "storm_control must be an object")
        expectError(#", "storm_control": {"broadcast_pps": -1}"#, containing: "storm_control.broadcast_pps must be an integer of at least 0")
        expectError(#", "storm_control": {"multicast_pps": 1.5}"#, containing: "storm_control.multicast_pps must be")
        expectError(#", "storm_control": {"unknown_unicast_pps": true}"#, containing: "storm_control.unknown_unicast_pps must be")
    }

    func testUnknownFieldsAreRefusedWhereTheyAre() {
        expectError(#", "vlans": [10]"#, containing: "unknown field \"vlans\" in port")
        expectError(#", "rate_limit": {"pps": 1, "burst": 1, "bytes": 5}"#, containing: "unknown field \"bytes\" in rate_limit")
        expectError(#", "storm_control": {"broadcast": 5}"#, containing: "unknown field \"broadcast\" in storm_control")
    }

    /// GET, the state file and a PATCH's merge target share one shape: every key, null when off.
    /// OVS's pmd-rxq-affinity syntax, each queue once; shown sorted by queue.
    func testRxqAffinity() throws {
        XCTAssertEqual(try vhostUser(#", "queues": 4, "rxq_affinity": "3:1,0:0,2:12""#).policy.rxqAffinity, [0: 0, 2: 12, 3: 1])
        XCTAssertEqual(try vhostUser(#", "rxq_affinity": """#).policy.rxqAffinity, [:])
        XCTAssertEqual(try afPacket(#", "rxq_affinity": null"#).policy.rxqAffinity, [:])
        var policy = PortPolicy()
        policy.rxqAffinity = [3: 1, 0: 0, 10: 2]
        XCTAssertEqual(PortPolicyEncoder.encode(policy)["rxq_affinity"], .string("0:0,3:1,10:2"))
        for bad in [#""0:1,0:0""#, #""0""#, #""0:""#, #"":1""#, #""0:1,""#, #""-1:0""#, #""0: 1""#, #""+1:0""#, #""00000:1""#, "5",
                    #"["0:1"]"#] {
            expectError(#", "rxq_affinity": "# + bad, containing: "rxq_affinity must be a string of queue:thread pairs")
        }
        expectError(#", "rxq_affinity": "128:0""#, containing: "rxq_affinity queue 128 is not from 0 to 127")
        // Against the port's queues and the daemon's threads: `PortSpec.policyProblem`.
        let spec = try vhostUser(#", "queues": 2, "rxq_affinity": "1:1""#)
        XCTAssertNil(spec.policyProblem(pollThreads: 2))
        XCTAssertEqual(spec.policyProblem(pollThreads: 1), "rxq_affinity thread 1 is not below the 1 poll threads (--pmd-threads)")
        XCTAssertNil(try afPacket(#", "rxq_affinity": "1:0""#).policyProblem(pollThreads: 2), "a socket per poll thread")
        XCTAssertEqual(try afPacket(#", "rxq_affinity": "1:0""#).policyProblem(pollThreads: 1),
                       "rxq_affinity queue 1 is not below the port's 1 queues")
    }

    func testEncodedShapeHasEveryKeyAndReadsBack() throws {
        let off = PortPolicyEncoder.encode(PortPolicy())
        XCTAssertEqual(JSON.object(off).rendered(),
                       #"{"allowed_macs":null,"max_macs":64,"rate_limit":null,"rxq_affinity":null,"storm_control":null,"trunk":[],"vlan":null}"#)
        let on = PortPolicyEncoder.encode(.everyKeySet)
        XCTAssertEqual(JSON.object(on).rendered(),
                       #"{"allowed_macs":["02:ab:00:00:00:01"],"max_macs":100,"rate_limit":{"burst":3,"pps":10},"rxq_affinity":"0:0","#
                       + #""storm_control":{"broadcast_pps":null,"multicast_pps":4,"unknown_unicast_pps":0},"trunk":[8,9],"vlan":7}"#)
        XCTAssertEqual(try PortPolicyDecoder.decode(on), .everyKeySet)
        XCTAssertEqual(try PortPolicyDecoder.decode(off), PortPolicy())
    }
}

extension PortPolicy {
    /// A policy with every key set (one storm limit left out, one at 0), for round trips.
    static var everyKeySet: PortPolicy {
        var policy = PortPolicy()
        policy.vlan = 7
        policy.trunk = [8, 9]
        policy.allowedMACs = [0x02AB_0000_0001]
        policy.maxMACs = 100
        policy.rateLimit = .init(pps: 10, burst: 3)
        policy.stormControl = .init(multicastPPS: 4, unknownUnicastPPS: 0)
        policy.rxqAffinity = [0: 0]
        return policy
    }
}
