// Segments across nodes on the kernel's own tunnels (issue 18, item 7). Two nodes, each a
// network namespace with its own vhost-switchd, joined by a veth underlay. On each node, one
// Linux VXLAN device per segment (one VNI each) is an af-packet port on that segment's access
// VLAN, and each segment has a guest: a namespace behind a veth that is an af-packet port on
// the same VLAN. Every guest is in one IP subnet, so only the switches keep the segments apart.
// Ports are created over REST, as deploy/SEGMENTS.md tells an operator to.
import Foundation
import TestSupport
import XCTest

final class SegmentsAcrossNodesTests: XCTestCase {
    /// The guests' MTU, and the VXLAN devices'.
    static let segmentMTU = 1500
    /// What VXLAN adds in front of a frame: outer IPv4 20 + UDP 8 + VXLAN 8 + the inner Ethernet
    /// header 14 (the inner frame is carried whole; the outer Ethernet header is not in the MTU).
    static let vxlanOverhead = 50
    static let underlaySubnet = "10.76.0"

    /// One segment as built on both nodes.
    struct Segment {
        /// The access VLAN of its ports; nil: the untagged default segment (no keys).
        var vlan: Int?
        /// The VXLAN device on each node, and its port (same name).
        var tunnel: String
        /// The guests' ports (same name on both nodes).
        var guestPort: String
        var guestA: NetworkNamespaceFixture
        var guestB: NetworkNamespaceFixture
        var addressA: String
        var addressB: String
    }

    private var nodes: [NetworkNode] = []

    override func tearDown() {
        // Runs when a test fails or throws too: no namespace, veth or daemon outlives it.
        for node in nodes { node.destroy() }
        nodes = []
        super.tearDown()
    }

    // MARK: Tests

    /// No VLAN keys anywhere: one VXLAN device per node carries the default segment, in both
    /// directions, and a full 1500-byte packet (DF set) crosses an underlay of 1500 + 50.
    func testDefaultSegmentCrossesNodesThroughOneVXLANDevice() throws {
        if let reason = NetworkNode.printedSkipReason() { throw XCTSkip(reason) }
        let (a, _, segments) = try buildNodes([(vlan: nil, vni: 5000)])
        let segment = segments[0]
        let tunnelSentBefore = try a.counter(segment.tunnel, "tx_packets")

        assertPings(from: segment.guestA, to: segment.addressB)
        assertPings(from: segment.guestB, to: segment.addressA)
        assertPings(from: segment.guestA, to: segment.addressB, payload: Self.segmentMTU - 28)

        // Node a's echo requests (3 + 2) and its replies (3) all left through its VXLAN device.
        let tunnelSent = try a.counter(segment.tunnel, "tx_packets") - tunnelSentBefore
        XCTAssertGreaterThanOrEqual(tunnelSent, 8, "\(segment.tunnel) on node a sent \(tunnelSent) frames")
    }

    /// Access ports on VLANs 10 and 20 (VNIs 100 and 200): each segment's guests ping each other
    /// across the nodes, both ways, and GET shows each port's `vlan`. Needs VLAN isolation too:
    /// without it the two tunnels join one flood domain into a loop (a broadcast goes out through
    /// vx100, comes back through vx200) and the storm starves the pings.
    func testSameSegmentPeersPingAcrossNodes() throws {
        if let reason = NetworkNode.printedSkipReason() { throw XCTSkip(reason) }
        let (a, b, segments) = try buildNodes([(vlan: 10, vni: 100), (vlan: 20, vni: 200)])
        for segment in segments {
            assertPings(from: segment.guestA, to: segment.addressB)
            assertPings(from: segment.guestB, to: segment.addressA)
            for node in [a, b] {
                for port in [segment.tunnel, segment.guestPort] {
                    let reply = try XCTUnwrap(node.daemon).api.request("GET", "/v1/ports/\(port)")
                    XCTAssertEqual(reply.object["vlan"] as? Int, segment.vlan, "GET /v1/ports/\(port) on \(node.namespace): \(reply)")
                }
            }
        }
    }

    /// VLANs 10 and 20 again: a guest of one segment reaches no guest of the other, on either
    /// node, and its ARP broadcasts reach the other segment's guests neither on its own node nor
    /// through the other VNI's tunnel, while they do reach its own segment's guest on the other
    /// node (so the tunnel carried them). Both directions. Needs VLAN isolation in the dataplane.
    func testDifferentSegmentsStayApartAcrossNodes() throws {
        if let reason = NetworkNode.printedSkipReason() { throw XCTSkip(reason) }
        let (a, b, segments) = try buildNodes([(vlan: 10, vni: 100), (vlan: 20, vni: 200)])
        let (ten, twenty) = (segments[0], segments[1])
        try assertBroadcastsStayInSegment(sender: ten.guestA, on: a, towards: [twenty.addressA, twenty.addressB],
                                          sameSegmentPeer: ten.guestB, otherSegment: [twenty.guestA, twenty.guestB],
                                          otherTunnel: twenty.tunnel)
        try assertBroadcastsStayInSegment(sender: twenty.guestB, on: b, towards: [ten.addressA, ten.addressB],
                                          sameSegmentPeer: twenty.guestA, otherSegment: [ten.guestA, ten.guestB],
                                          otherTunnel: ten.tunnel)
    }

    // MARK: The two nodes

    /// Nodes a and b: underlay 10.76.0.1 and .2 (MTU 1550), a daemon each, and per planned
    /// segment a VXLAN device and a guest on both, each an af-packet port on the segment's VLAN.
    /// Guests are 10.77.0.1<i> on node a and 10.77.0.2<i> on node b, for the i-th segment.
    private func buildNodes(_ plan: [(vlan: Int?, vni: Int)]) throws -> (a: NetworkNode, b: NetworkNode, segments: [Segment]) {
        let a = try NetworkNode(tag: "a")
        nodes.append(a)
        let b = try NetworkNode(tag: "b")
        nodes.append(b)
        try NetworkNode.joinUnderlay(a, b, subnet: Self.underlaySubnet, mtu: Self.segmentMTU + Self.vxlanOverhead)
        try a.startDaemon()
        try b.startDaemon()

        var segments: [Segment] = []
        for (index, planned) in plan.enumerated() {
            let guestPort = "guest-\(planned.vlan.map(String.init) ?? "default")"
            var tunnel = "", guests: [NetworkNamespaceFixture] = []
            for (node, other, host) in [(a, b, 11 + index), (b, a, 21 + index)] {
                tunnel = try node.addVXLAN(vni: planned.vni, remote: try XCTUnwrap(other.underlayAddress), mtu: Self.segmentMTU)
                try node.attach(interface: tunnel, port: tunnel, vlan: planned.vlan)
                let guest = try node.addGuest(tag: "\(node === a ? "a" : "b")\(planned.vlan ?? 0)", address: "10.77.0.\(host)/24")
                guests.append(guest)
                try node.attach(interface: guest.hostInterface, port: guestPort, vlan: planned.vlan)
            }
            segments.append(Segment(vlan: planned.vlan, tunnel: tunnel, guestPort: guestPort, guestA: guests[0], guestB: guests[1],
                                    addressA: "10.77.0.\(11 + index)", addressB: "10.77.0.\(21 + index)"))
        }
        return (a, b, segments)
    }

    // MARK: Assertions

    private func ping(from guest: NetworkNamespaceFixture, to address: String, count: Int, deadline: Int, payload: Int? = nil) throws -> (status: Int32, output: String) {
        var command = ["ping", "-n", "-c", "\(count)", "-i", "0.2", "-w", "\(deadline)", address]
        if let payload { command += ["-M", "do", "-s", "\(payload)"] }
        return try guest.inside(command, check: false)
    }

    /// Three echo replies (ICMP `payload` bytes, DF set when given) within 10 s.
    private func assertPings(from guest: NetworkNamespaceFixture, to address: String, payload: Int? = nil,
                             file: StaticString = #filePath, line: UInt = #line) {
        do {
            let result = try ping(from: guest, to: address, count: 3, deadline: 10, payload: payload)
            XCTAssertEqual(result.status, 0, "\(guest.namespace) -> \(address): \(result.output)\n\(daemonLogs())", file: file, line: line)
            XCTAssertTrue(result.output.contains("3 received"), result.output, file: file, line: line)
        } catch {
            XCTFail("ping \(guest.namespace) -> \(address): \(error)", file: file, line: line)
        }
    }

    /// `sender` (a guest on `node`) pings each address in `towards` (the other segment's guests)
    /// and gets no reply. Meanwhile no frame at all reaches `otherSegment`'s guests and none enters
    /// `otherTunnel` on `node`, while `sameSegmentPeer` on the other node receives the ARP requests.
    private func assertBroadcastsStayInSegment(sender: NetworkNamespaceFixture, on node: NetworkNode, towards addresses: [String],
                                               sameSegmentPeer: NetworkNamespaceFixture, otherSegment: [NetworkNamespaceFixture],
                                               otherTunnel: String) throws {
        let otherBefore = try otherSegment.map { try $0.counter("rx_packets") }
        let peerBefore = try sameSegmentPeer.counter("rx_packets")
        let tunnelBefore = try node.counter(otherTunnel, "tx_packets")

        for address in addresses {
            let result = try ping(from: sender, to: address, count: 2, deadline: 2)
            XCTAssertNotEqual(result.status, 0, "\(sender.namespace) reached \(address) on another segment: \(result.output)")
            XCTAssertTrue(result.output.contains(" 0 received"), result.output)
        }
        // The kernel goes on asking (ARP) for a while after ping gives up; stop it, so no late
        // request lands in the next window, and let the frames still crossing arrive.
        try sender.inside(["ip", "neigh", "flush", "dev", sender.namespaceInterface])
        Thread.sleep(forTimeInterval: 0.3)

        for (guest, before) in zip(otherSegment, otherBefore) {
            let received = try guest.counter("rx_packets") - before
            XCTAssertEqual(received, 0, "\(guest.namespace) (another segment) received \(received) frames while \(sender.namespace) sent ARP requests")
        }
        let tunnelSent = try node.counter(otherTunnel, "tx_packets") - tunnelBefore
        XCTAssertEqual(tunnelSent, 0, "\(otherTunnel) on \(node.namespace) (another VNI) sent \(tunnelSent) frames")
        let peerReceived = try sameSegmentPeer.counter("rx_packets") - peerBefore
        XCTAssertGreaterThanOrEqual(peerReceived, 1, "\(sameSegmentPeer.namespace) (same segment, other node) got none of the ARP requests")
    }

    private func daemonLogs() -> String {
        nodes.map { "--- \($0.namespace):\n\($0.daemon?.output.suffix(3000) ?? "")" }.joined(separator: "\n")
    }
}
