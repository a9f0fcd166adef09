import TestSupport
import VhostSystem
import VhostUser
import Virtio
import XCTest
@testable import Dataplane

/// Memory hotplug under traffic (vhost-user.rst ADD_MEM_REG / REM_MEM_REG, issue 21): a
/// vhost-user port m sends from its rings in region A while regions come and go, and a
/// neighbour pair keeps forwarding through it all. m's device is driven on the test thread
/// (the control loop's job) over a socketpair; its published queues become the port's.
final class SwitchMemoryHotplugTests: SimulatedGuestSwitchTestCase {
    /// Port m: a device whose queues go to the switch, and a `FakeGuestTransmitter` on it.
    private struct HotplugPort {
        let delegate = RecordingDeviceDelegate()
        let connection: VhostUserConnection
        let transmitter: FakeGuestTransmitter
        var frontend: FakeFrontend { transmitter.frontend }
        var regions: Int { connection.device.info().memoryRegions.count }

        init(fabric: Switch, portID: Int) throws {
            delegate.onQueuesChanged.withLock { $0 = { [fabric] queues in fabric.setQueues(portID: portID, queues: queues) } }
            let device = try VhostUserDevice(
                configuration: VhostUserDeviceConfiguration(name: "m", socketPath: "/nonexistent/m.sock", maxQueuePairs: 1,
                                                            offeredFeatures: VhostUserDevice.defaultOfferedFeatures),
                delegate: delegate)
            let (frontend, backend) = try FakeFrontend.pair()
            connection = VhostUserConnection(device: device, socket: backend)
            frontend.pump = { [connection] in _ = connection.handleReadable() }
            transmitter = try FakeGuestTransmitter(frontend: frontend, memory: FakeFrontendMemory(name: "hotplug-a"))
        }

        func add(_ regions: FakeHotplugRegions, _ i: Int) throws -> UInt64? {
            try frontend.acked(.addMemReg, regions.payload(i), fds: [regions.fd])
        }

        func remove(_ regions: FakeHotplugRegions, _ i: Int) throws -> UInt64? {
            try frontend.acked(.remMemReg, regions.payload(i))
        }
    }

    private static let mMAC = SegmentFrames.mac(0xE)

    /// m sends `count` frames to d from its transmit ring (in region A).
    private func sendFromM(_ port: HotplugPort, count: Int = 8) throws {
        try port.transmitter.transmit(Array(repeating: FakeGuestTransmitter.frame(destination: SegmentFrames.mac(0xD), source: Self.mMAC),
                                            count: count))
    }

    /// Waits until d has `expected` frames from m; returns how many it has.
    private func framesFromM(at d: SimulatedGuestPort, expected: Int) -> Int {
        let deadline = MonotonicClockForTests.now() + 2
        while true {
            d.collect()
            let count = d.receivedFrames.filter { Array($0[6..<12]) == Self.mMAC }.count
            if count >= expected || MonotonicClockForTests.now() > deadline { return count }
            usleep(200)
        }
    }

    func testRegionsComeAndGoUnderTraffic() throws {
        var neighbours = try NeighbourPair(self)
        let port = try HotplugPort(fabric: fabric, portID: try XCTUnwrap(fabric.addPort(name: "m")))
        XCTAssertEqual(try port.frontend.request(.getMaxMemSlots)?.u64, 509)
        let regions = try FakeHotplugRegions()
        var fromM = 0
        // d's 256 receive buffers are collected after each round, so none overflows.
        func traffic() throws {
            neighbours.send()
            try sendFromM(port)
            fromM += 8
            neighbours.check()
            XCTAssertEqual(framesFromM(at: neighbours.d.guest, expected: fromM), fromM, "m's frames")
        }

        // Up to 509: A (the rings, from SET_MEM_TABLE) and 508 added while m and c send.
        for i in 0..<508 {
            XCTAssertEqual(try port.add(regions, i), 0, "region \(i)")
            if i % 64 == 0 { try traffic() }
        }
        XCTAssertEqual(port.regions, 509)
        XCTAssertEqual(try port.add(regions, 508), 1, "the 510th slot")
        XCTAssertFalse(port.connection.isClosed)
        XCTAssertEqual(port.regions, 509)
        try traffic()

        // Every other one of the first 100 removed, then added again, under traffic.
        for i in stride(from: 0, to: 100, by: 2) {
            XCTAssertEqual(try port.remove(regions, i), 0, "region \(i)")
            if i % 10 == 0 { try traffic() }
        }
        XCTAssertEqual(port.regions, 459)
        for i in stride(from: 0, to: 100, by: 2) {
            XCTAssertEqual(try port.add(regions, i), 0, "region \(i) again")
            if i % 10 == 0 { try traffic() }
        }
        XCTAssertEqual(port.regions, 509)

        // The region the rings live in goes (vhost-user.rst: the back-end must unmap it): the
        // rings stop, as after a SET_MEM_TABLE without them, and run again once the region is
        // back and the front-end has given the ring addresses again.
        let a = port.transmitter.memory
        XCTAssertEqual(try port.frontend.acked(.remMemReg, FakeFrontend.singleRegion(a.descriptor)), 0)
        XCTAssertTrue(port.delegate.queues.isEmpty, "no ring of m is polled")
        XCTAssertFalse(port.connection.isClosed)
        neighbours.send()
        neighbours.check()
        XCTAssertEqual(try port.frontend.acked(.addMemReg, FakeFrontend.singleRegion(a.descriptor), fds: [a.fd]), 0)
        XCTAssertTrue(port.delegate.queues.isEmpty, "the addresses were dropped with the region")
        for ring in 0..<2 { XCTAssertEqual(try port.frontend.acked(.setVringAddr, a.vringAddressPayload(ring)), 0) }
        XCTAssertEqual(port.delegate.queues.map(\.vringIndex), [0, 1])
        try traffic()
        XCTAssertTrue(port.delegate.errors.allSatisfy { !$0.contains("session closed") }, "\(port.delegate.errors)")
    }

    /// A hostile front-end's region requests: overlaps, removals of regions it never added,
    /// a REM that carries an fd, then 10,000 ADD/REM toggles in a tight loop. Each refusal
    /// is one failed request; the toggles meet the session's ring-change budget and the
    /// session is closed as hostile; no fd or guard slot is left behind, and the
    /// neighbours forward throughout.
    func testHostileRegionRequestsLeaveTheNeighboursForwarding() throws {
        var neighbours = try NeighbourPair(self)
        let regions = try FakeHotplugRegions(count: 8)
        let fdsBefore = FileDescriptor.openCount()
        let slotsBefore = GuestMemoryGuard.registeredSlots
        // Everything of m's session lives in this scope, so the counts after it see it gone.
        do {
            let m = try HotplugPort(fabric: fabric, portID: try XCTUnwrap(fabric.addPort(name: "m")))
            let a = m.transmitter.memory.descriptor
            XCTAssertEqual(try m.add(regions, 0), 0)

            func region(_ gpa: UInt64, _ va: UInt64, size: UInt64 = 0x1000) -> [UInt8] {
                FakeFrontend.singleRegion(GuestMemoryRegionDescriptor(guestPhysicalAddress: gpa, size: size, userspaceAddress: va, mmapOffset: 0x1000))
            }
            let r0 = regions.descriptor(0)
            let refusals: [(String, [UInt8])] = [
                ("inside A's guest-physical range", region(a.guestPhysicalAddress + 0x1000, 0x1_0000_0000)),
                ("inside region 0's front-end range", region(0x2_0000_0000, r0.userspaceAddress + 0x800)),
                ("covering region 0", region(r0.guestPhysicalAddress - 0x1000, 0x1_0000_0000, size: 0x4000)),
            ]
            for (name, payload) in refusals {
                XCTAssertEqual(try m.frontend.acked(.addMemReg, payload, fds: [regions.fd]), 1, name)
                XCTAssertTrue(m.connection.device.info().lastError?.contains("overlap") == true, name)
                neighbours.send()
            }
            XCTAssertEqual(try m.remove(regions, 3), 1, "a region never added")
            XCTAssertEqual(try m.frontend.acked(.remMemReg, region(r0.guestPhysicalAddress, r0.userspaceAddress, size: 0x2000)), 1,
                           "region 0's addresses with another size")
            XCTAssertEqual(m.regions, 2)
            XCTAssertEqual(m.delegate.queues.map(\.vringIndex), [0, 1], "m's rings run on")
            try sendFromM(m)
            // vhost-user.rst: a REM_MEM_REG may carry an fd; the back-end closes it unused.
            XCTAssertEqual(try m.frontend.acked(.remMemReg, regions.payload(0), fds: [regions.fd]), 0)
            XCTAssertEqual(m.regions, 1)
            neighbours.check()

            var toggles = 0
            while toggles < 10_000 && !m.connection.isClosed {
                do {
                    try m.frontend.send(.addMemReg, regions.payload(1), fds: [regions.fd])
                    try m.frontend.send(.remMemReg, regions.payload(1))
                } catch {
                    break  // closed under us
                }
                m.connection.handleReadable()
                toggles += 1
                if toggles % 200 == 0 { neighbours.send() }
            }
            m.connection.handleReadable()
            XCTAssertTrue(m.connection.isClosed, "\(toggles) toggles")
            guard case .tooManyRingChanges = m.connection.closeReason else {
                return XCTFail("closed for \(String(describing: m.connection.closeReason))")
            }
            XCTAssertLessThan(toggles, 2_000, "the budget (288 a second after a first burst of 797) bounds the toggles")
            XCTAssertTrue(m.delegate.queues.isEmpty)
            neighbours.send()
            neighbours.check()
            m.frontend.close()
        }
        XCTAssertEqual(GuestMemoryGuard.registeredSlots, slotsBefore, "every guard slot released")
        XCTAssertEqual(FileDescriptor.openCount(), fdsBefore, "every fd the requests carried is closed")
    }
}
