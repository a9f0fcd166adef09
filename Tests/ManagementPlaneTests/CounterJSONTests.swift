import Dataplane
import Virtio
import XCTest
@testable import ManagementPlane

/// The API's counter objects come from the counter tables; these pin them to the contract
/// (openapi/vhost-switch.yaml: Counters, PortStats.switch, PortStats.kernel).
final class CounterJSONTests: XCTestCase {
    func testRingCountersKeepTheContractsFields() {
        var snapshot = VirtqueueStatisticsSnapshot()
        snapshot.packets = 5
        snapshot.dropsNoBuffers = 2
        guard case .object(let members) = CounterJSON.object(snapshot) else { return XCTFail("not an object") }
        XCTAssertEqual(Set(members.keys), [
            "packets", "bytes", "bursts", "notifications_sent", "drops_malformed_descriptor", "drops_malformed_header",
            "drops_no_buffers", "drops_too_large", "drops_too_short", "drops_unsupported_offload", "invalid_heads", "ring_errors",
            "busy_cycles",
        ])
        XCTAssertEqual(members["packets"], .integer(5))
        XCTAssertEqual(members["drops_no_buffers"], .integer(2))
        XCTAssertEqual(members["bytes"], .integer(0))
    }

    func testSwitchCountersNestAsBefore() {
        var statistics = PortSwitchStatistics()
        for counter in PortSwitchCounter.allCases { statistics[counter] = UInt64(counter.rawValue + 1) }
        var members: [String: JSON] = ["drops": ["no_guest_buffers": .integer(90)]]
        CounterJSON.add(statistics, to: &members)
        func n(_ counter: PortSwitchCounter) -> JSON { .integer(Int64(counter.rawValue + 1)) }
        let expected: JSON = [
            "rx_packets": n(.rxPackets), "rx_bytes": n(.rxBytes), "rx_broadcast": n(.rxBroadcast), "rx_multicast": n(.rxMulticast),
            "rx_size_histogram": [
                "64": n(.size64), "65-127": n(.size65To127), "128-255": n(.size128To255), "256-511": n(.size256To511),
                "512-1023": n(.size512To1023), "1024-1518": n(.size1024To1518), "1519+": n(.size1519Plus),
            ],
            "tx_packets": n(.txPackets), "tx_dropped": n(.txDropped),
            "tx_offloads_done": [
                "checksums_completed": n(.offloadChecksumsCompleted), "frames_segmented": n(.offloadFramesSegmented),
                "segments": n(.offloadSegments),
            ],
            "drops": [
                "no_guest_buffers": .integer(90),
                "ring_not_ready": n(.dropsRingNotReady), "mtu_exceeded": n(.dropsMTUExceeded), "mac_table_full": n(.dropsMACTableFull),
                "hairpin": n(.dropsHairpin), "offload_malformed": n(.dropsOffloadMalformed),
                "vlan_not_carried": n(.dropsVLANNotCarried), "vlan_tagged_on_access": n(.dropsVLANTaggedOnAccess),
                "vlan_malformed": n(.dropsVLANMalformed), "vlan_egress_not_carried": n(.dropsVLANEgressNotCarried),
                "spoofed": n(.dropsSpoofed), "rate_limited": n(.dropsRateLimited), "storm_broadcast": n(.dropsStormBroadcast),
                "storm_multicast": n(.dropsStormMulticast), "storm_unknown_unicast": n(.dropsStormUnknownUnicast),
            ],
            "macs_not_learned_limit": n(.macsNotLearnedLimit), "mac_evictions": n(.macEvictions),
        ]
        XCTAssertEqual(JSON.object(members), expected)
    }

    func testKernelCountersAreTheContractsNine() {
        var snapshot = PacketSocketPortStatistics.Snapshot()
        snapshot.receivedPackets = 7
        snapshot.transmitSendErrors = 1
        guard case .object(let members) = CounterJSON.object(snapshot) else { return XCTFail("not an object") }
        XCTAssertEqual(Set(members.keys), [
            "rx_packets", "rx_bytes", "tx_packets", "tx_bytes", "rx_ring_drops", "rx_drops_too_large", "tx_send_errors",
            "tx_drops_kernel", "tx_drops_ring_full",
        ])
        XCTAssertEqual(members["rx_packets"], .integer(7))
        XCTAssertEqual(members["tx_send_errors"], .integer(1))
    }

    /// /metrics: a kernel port's socket counters land in the same families as a vhost-user
    /// port's rings, with their direction and drop reason.
    func testKernelCountersBecomePortSeries() {
        var snapshot = PacketSocketPortStatistics.Snapshot()
        snapshot.receivedPackets = 7
        snapshot.transmittedBytes = 640
        snapshot.receiveRingDrops = 3
        let metrics = MetricsExposition.Builder()
        MetricsExposition.declareFamilies(VirtqueueStatisticsSnapshot.self, in: metrics)
        MetricsExposition.add(snapshot, labels: [("port", "k")], to: metrics)
        let text = metrics.render()
        XCTAssertTrue(text.contains(#"vhost_switch_port_packets_total{port="k",direction="rx"} 7"#), text)
        XCTAssertTrue(text.contains(#"vhost_switch_port_bytes_total{port="k",direction="tx"} 640"#), text)
        XCTAssertTrue(text.contains(#"vhost_switch_port_drops_total{port="k",direction="rx",reason="ring_full"} 3"#), text)
        XCTAssertTrue(text.contains(#"vhost_switch_port_send_errors_total{port="k",direction="tx"} 0"#), text)
        XCTAssertEqual(text.components(separatedBy: "# TYPE vhost_switch_port_packets_total counter").count, 2, "one family, declared once")
    }

    /// /metrics: drops per segment (issue 18) carry the VLAN and the reason.
    func testSegmentDropsBecomeSegmentSeries() {
        var segment = SegmentDropStatistics()
        segment[.spoofed] = 3
        segment[.stormBroadcast] = 2
        let metrics = MetricsExposition.Builder()
        MetricsExposition.declareFamilies(SegmentDropStatistics.self, in: metrics)
        MetricsExposition.add(segment, labels: [("vlan", "10")], to: metrics)
        let text = metrics.render()
        XCTAssertTrue(text.contains(#"vhost_switch_segment_drops_total{vlan="10",reason="spoofed"} 3"#), text)
        XCTAssertTrue(text.contains(#"vhost_switch_segment_drops_total{vlan="10",reason="storm_broadcast"} 2"#), text)
        XCTAssertTrue(text.contains(#"vhost_switch_segment_drops_total{vlan="10",reason="vlan_not_carried"} 0"#), text)
        XCTAssertEqual(text.components(separatedBy: "# TYPE vhost_switch_segment_drops_total counter").count, 2)
    }
}
