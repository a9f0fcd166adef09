import ManagementClient
import XCTest
@testable import vhost_switchctl

/// `port set KEY=VALUE...` -> the JSON merge patch of PATCH /v1/ports/{name}.
final class PortSettingPatchTests: XCTestCase {
    func patch(_ arguments: String...) throws -> String {
        try PortSettingPatch(arguments).json.rendered()
    }

    func problem(_ arguments: String...) -> String {
        do {
            let patch = try PortSettingPatch(arguments)
            XCTFail("\(arguments) gave \(patch.json.rendered())")
            return ""
        } catch {
            return error.description
        }
    }

    func testValuesOfEveryKey() throws {
        XCTAssertEqual(try patch("vlan=10"), #"{"vlan":10}"#)
        XCTAssertEqual(try patch("vlan=none"), #"{"vlan":null}"#)
        XCTAssertEqual(try patch("trunk=10,20"), #"{"trunk":[10,20]}"#)
        XCTAssertEqual(try patch("trunk=30"), #"{"trunk":[30]}"#)
        XCTAssertEqual(try patch("trunk=none"), #"{"trunk":null}"#)
        XCTAssertEqual(try patch("allowed_macs=02:00:00:00:00:01,02:00:00:00:00:02"),
                       #"{"allowed_macs":["02:00:00:00:00:01","02:00:00:00:00:02"]}"#)
        XCTAssertEqual(try patch("allowed_macs=none"), #"{"allowed_macs":null}"#)
        XCTAssertEqual(try patch("max_macs=100"), #"{"max_macs":100}"#)
        XCTAssertEqual(try patch("rate_limit=10000/64"), #"{"rate_limit":{"pps":10000,"burst":64}}"#)
        XCTAssertEqual(try patch("rate_limit=none"), #"{"rate_limit":null}"#)
        XCTAssertEqual(try patch("rate_limit.pps=500"), #"{"rate_limit":{"pps":500}}"#)
        XCTAssertEqual(try patch("storm_control=none"), #"{"storm_control":null}"#)
        XCTAssertEqual(try patch("rxq_affinity=0:1,1:0"), #"{"rxq_affinity":"0:1,1:0"}"#)
        XCTAssertEqual(try patch("rxq_affinity=none"), #"{"rxq_affinity":null}"#)
        XCTAssertEqual(try patch("storm_control.unknown_unicast_pps=none"), #"{"storm_control":{"unknown_unicast_pps":null}}"#)
    }

    func testSeveralKeysMergeIntoOnePatch() throws {
        XCTAssertEqual(try patch("vlan=10", "storm_control.broadcast_pps=1000", "storm_control.multicast_pps=2000", "max_macs=none"),
                       #"{"vlan":10,"storm_control":{"broadcast_pps":1000,"multicast_pps":2000},"max_macs":null}"#)
        XCTAssertEqual(try patch("rate_limit.pps=1", "rate_limit.burst=2"), #"{"rate_limit":{"pps":1,"burst":2}}"#)
    }

    func testBadArgumentsNameTheProblem() {
        XCTAssertEqual(problem("vlan"), #""vlan" is not KEY=VALUE"#)
        XCTAssertEqual(problem("vlan=ten"), #"vlan=ten: "ten" is not a non-negative integer"#)
        XCTAssertEqual(problem("vlan=-1"), #"vlan=-1: "-1" is not a non-negative integer"#)
        XCTAssertEqual(problem("vlan="), #"vlan=: "" is not a non-negative integer"#)
        XCTAssertEqual(problem("trunk=10,,20"), #"trunk=10,,20: "" is not a non-negative integer"#)
        XCTAssertTrue(problem("color=red").hasPrefix(#"unknown key "color"; known: vlan, trunk, allowed_macs"#))
        XCTAssertEqual(problem("vlan=1", "vlan=2"), "vlan is given twice")
        XCTAssertEqual(problem("rate_limit=1/2", "rate_limit.pps=3"), "rate_limit and rate_limit.pps are both given")
        XCTAssertEqual(problem("storm_control.broadcast_pps=3", "storm_control=none"), "storm_control.broadcast_pps and storm_control are both given")
        XCTAssertEqual(problem("rate_limit=1000"), "rate_limit=1000: PPS/BURST (e.g. 10000/64), or none")
        XCTAssertEqual(problem("rate_limit.pps=none"), "rate_limit.pps=none: cannot be none (reset rate_limit as a whole)")
        XCTAssertEqual(problem("storm_control=5"), "storm_control=5: only none; set its members with storm_control.KEY=VALUE")
        XCTAssertEqual(problem("allowed_macs=02:00:00:00:00:01,"), "allowed_macs=02:00:00:00:00:01,: a comma-separated list of MACs, or none")
        XCTAssertEqual(problem(), "give at least one KEY=VALUE")
    }
}
