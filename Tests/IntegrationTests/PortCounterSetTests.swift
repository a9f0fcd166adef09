// The test kit's reading of GET /v1/stats for the issue 18 tests (`PortCounterSet`): fast, no
// daemon.
import Foundation
import TestSupport
import XCTest

final class PortCounterSetTests: XCTestCase {
    private func port(_ json: String) throws -> PortCounterSet {
        let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        return PortCounterSet(port: object)
    }

    func testFlattensNestedCountersAndLeavesOutTheRest() throws {
        let counters = try port("""
        {"name": "a", "sessions": 2, "state": "ready", "kernel": {"interface_up": true, "rx_packets": 5},
         "switch": {"tx_packets": 7, "drops": {"hairpin": 1, "vlan_not_carried": 3}}, "vrings": [{"index": 0}]}
        """)
        XCTAssertEqual(counters.values, ["sessions": 2, "kernel.rx_packets": 5, "switch.tx_packets": 7,
                                         "switch.drops.hairpin": 1, "switch.drops.vlan_not_carried": 3])
    }

    func testDropsAreFoundByAWordOfTheirName() throws {
        let counters = try port("""
        {"switch": {"drops_spoofed": 4, "drops": {"spoofed_source": 1, "vlan_not_carried": 3}, "vlan_tagged_packets": 9}}
        """)
        XCTAssertEqual(counters.drops(matching: ["spoof"]), 5, "both spellings of a drop counter are summed")
        XCTAssertEqual(counters.drops(matching: ["vlan"]), 3, "a counter without \"drops\" in its path is not a drop")
        XCTAssertNil(counters.drops(matching: ["mac_limit"]), "no such counter: nil, not 0")
    }
}
