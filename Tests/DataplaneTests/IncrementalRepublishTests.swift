import XCTest
@testable import Dataplane

/// A change to one port without queues patches the published snapshots
/// (`PollSnapshot.replacingPort`); they must equal snapshots built from scratch.
final class IncrementalRepublishTests: XCTestCase {
    func testPortIDsAreTheLowestFreeOnes() {
        var ids = PortIDAllocator(limit: 5)
        XCTAssertEqual((0..<5).map { _ in ids.allocate() }, [0, 1, 2, 3, 4])
        XCTAssertNil(ids.allocate(), "all five are taken")
        ids.release(3)
        ids.release(1)
        ids.release(2)
        XCTAssertEqual(ids.allocate(), 1)
        XCTAssertEqual(ids.allocate(), 2)
        ids.release(4)
        XCTAssertEqual(ids.allocate(), 3)
        XCTAssertEqual(ids.allocate(), 4)
        XCTAssertNil(ids.allocate())
    }

    func testReleasingTheHighestIDsShrinksTheRange() {
        var ids = PortIDAllocator(limit: 10)
        for _ in 0..<6 { _ = ids.allocate() }
        ids.release(2)
        ids.release(4)
        ids.release(5)  // 4 goes with it, 2 stays released
        XCTAssertEqual(ids.allocate(), 2)
        XCTAssertEqual(ids.allocate(), 4)
        XCTAssertEqual(ids.allocate(), 5)
        XCTAssertEqual(ids.allocate(), 6)
    }

    func testPatchedSnapshotsEqualOnesBuiltFromScratch() throws {
        for threads in [1, 2] {
            var configuration = Switch.Configuration()
            configuration.pollThreads = threads
            let fabric = try Switch(configuration: configuration)
            var ids: [Int] = []
            for i in 0..<40 {
                ids.append(try XCTUnwrap(fabric.addPort(name: "p\(i)", policy: Self.policy(i))))
                try assertPublishedEqualsRebuilt(fabric, "\(threads) threads, port \(i) added")
            }
            for i in stride(from: 0, to: 40, by: 3) {
                fabric.setPolicy(portID: ids[i], Self.policy(i + 1))
                try assertPublishedEqualsRebuilt(fabric, "\(threads) threads, port \(i)'s policy")
            }
            // The highest ids too: the tables end at the highest present port.
            for i in [39, 38, 5, 0, 17, 37] {
                fabric.removePort(id: ids[i])
                try assertPublishedEqualsRebuilt(fabric, "\(threads) threads, port \(i) removed")
            }
            XCTAssertEqual(fabric.addPort(name: "again"), ids[0], "the lowest free id is reused")
            try assertPublishedEqualsRebuilt(fabric, "\(threads) threads, a port added again")
            XCTAssertEqual(fabric.addPort(name: "again2"), ids[5])
            try assertPublishedEqualsRebuilt(fabric, "\(threads) threads, a second port added again")
        }
    }

    func testPatchingAfterAPortWithRingsKeepsItsEntries() throws {
        var configuration = Switch.Configuration()
        configuration.pollThreads = 2
        let fabric = try Switch(configuration: configuration)
        let guest = try SimulatedGuestPort(mac: [2, 0, 0, 0, 0, 1])
        let ringPort = try XCTUnwrap(fabric.addPort(name: "rings", policy: Self.policy(3)))
        fabric.setQueues(portID: ringPort, queues: guest.activeQueues)
        for i in 0..<5 { _ = try XCTUnwrap(fabric.addPort(name: "p\(i)", policy: Self.policy(i))) }
        try assertPublishedEqualsRebuilt(fabric, "ports added after a port with rings")
        let (published, _) = fabric.publishedAndRebuiltSnapshots
        XCTAssertEqual(published.map(\.queues.count).reduce(0, +), 1, "the guest's transmit ring is polled by one thread")
        XCTAssertTrue(published.allSatisfy { $0.targets[ringPort].driver != nil }, "every thread sends to the guest")
        fabric.removePort(id: 3)
        try assertPublishedEqualsRebuilt(fabric, "a port removed after a port with rings")
        fabric.setQueues(portID: ringPort, queues: [])
        fabric.removePort(id: ringPort)
        try assertPublishedEqualsRebuilt(fabric, "the port with rings removed")
    }

    /// Default, access, trunk, allowed MACs, limits: every kind of entry the tables hold.
    static func policy(_ i: Int) -> PortPolicy {
        var policy = PortPolicy()
        switch i % 5 {
        case 1: policy.vlan = UInt16(10 + i)
        case 2: policy.trunk = [100, 200, UInt16(300 + i)]; policy.vlan = 7
        case 3: policy.allowedMACs = [0x0200_0000_0001, UInt64(0x0200_0000_0100 + i)]
        case 4:
            policy.rateLimit = .init(pps: 1000 + UInt64(i), burst: 64)
            policy.stormControl = .init(broadcastPPS: 50, unknownUnicastPPS: 10)
            policy.maxMACs = 16
        default: break
        }
        return policy
    }

    private func assertPublishedEqualsRebuilt(_ fabric: Switch, _ step: String, line: UInt = #line) throws {
        let (published, rebuilt) = fabric.publishedAndRebuiltSnapshots
        XCTAssertEqual(published.count, rebuilt.count, step, line: line)
        for (a, b) in zip(published, rebuilt) {
            XCTAssertEqual(Array(a.presentPorts), Array(b.presentPorts), "\(step): present ports", line: line)
            XCTAssertEqual(a.queues.map(Self.describe), b.queues.map(Self.describe), "\(step): queues", line: line)
            XCTAssertEqual(a.targets.map(Self.describe), b.targets.map(Self.describe), "\(step): targets", line: line)
            XCTAssertEqual(a.rings.map(Self.describe), b.rings.map(Self.describe), "\(step): steered rings", line: line)
            XCTAssertEqual(a.rulesTable.count, b.rulesTable.count, "\(step): rules", line: line)
            XCTAssertEqual(a.rulesTable.rules.map(Self.describe), b.rulesTable.rules.map(Self.describe), "\(step): rules", line: line)
        }
    }

    private static func describe(_ driver: PortDriver?) -> String {
        switch driver {
        case nil: "none"
        case .split(let ring)?: "split \(ring.toOpaque())"
        case .packed(let ring)?: "packed \(ring.toOpaque())"
        case .packetSocket(let port)?: "socket \(port.toOpaque())"
        case .afXdp(let port)?: "xdp \(port.toOpaque())"
        }
    }

    private static func describe(_ queue: PolledQueue) -> String {
        "\(describe(queue.driver)) port \(queue.portID) fd \(queue.wakeDescriptor) max \(queue.maxFrameLength)"
    }

    private static func describe(_ target: TransmitTarget) -> String {
        "\(target.isPresent) \(describe(target.driver)) lock \(String(describing: target.lock?.toOpaque())) offloads \(target.acceptedOffloads)"
            + " rings \(target.firstRing)+\(target.ringCount)"
    }

    private static func describe(_ ring: SteeredRing) -> String {
        "\(describe(ring.driver)) lock \(String(describing: ring.lock?.toOpaque()))"
    }

    /// The rules' values, with what their pointers name (the memory itself differs).
    private static func describe(_ rules: PortRules) -> String {
        let vlans = rules.taggedSegments.map { Array(UnsafeBufferPointer(start: $0, count: MacLearningTable.segmentCount / 64)) }
        let macs = rules.allowedMACs.map { Array(UnsafeBufferPointer(start: $0, count: rules.allowedMACCount)) }
        return "untagged \(rules.untaggedSegment) tagged \(String(describing: vlans)) macs \(String(describing: macs)) "
            + "max \(rules.maxMACs) rate \(String(describing: rules.rate.map { ($0.cyclesPerToken, $0.depth) })) "
            + "storm \(String(describing: rules.storm.map { ($0.broadcast, $0.multicast, $0.unknownUnicast) })) "
            + "generation \(rules.generation) plain \(rules.isPlain)"
    }
}
