import TestSupport
import VhostSystem
import VhostUser
import Virtio
import XCTest

/// RING_PACKED over vhost-user: SET_VRING_ADDR names the descriptor ring and the two event
/// suppression areas, SET_VRING_BASE / GET_VRING_BASE carry the avail wrap counter in bit 15.
final class VhostUserPackedRingTests: XCTestCase {
    private static let packed = DirectSession.features | VhostUserDevice.ringPackedFeature

    func testPackedAndInOrderAreOfferedByDefault() {
        XCTAssertTrue(VirtioNetFeature.ringPacked.isSet(in: VhostUserDevice.defaultOfferedFeatures))
        XCTAssertTrue(VirtioNetFeature.inOrder.isSet(in: VhostUserDevice.defaultOfferedFeatures))
        XCTAssertTrue(VirtioNetFeature.inOrder.isSet(in: VhostUserDevice.supportedFeatures))
    }

    func testPackedRingsArePublishedWithTheirWrapCountersAndReturnedByGetVringBase() throws {
        let session = try DirectSession()
        let memory = try FakeFrontendMemory()
        try session.makeReady(memory: memory, kicks: [try EventFD(), try EventFD()], bases: [0x8003, 0x0005], features: Self.packed)
        let queues = session.delegate.queues
        XCTAssertEqual(queues.map(\.vringIndex), [0, 1])
        XCTAssertEqual(queues.map { $0.queue.layout }, [.packed, .packed])
        let receive = try XCTUnwrap(queues[0].queue.packed)
        let transmit = try XCTUnwrap(queues[1].queue.packed)
        XCTAssertEqual(receive.lastAvailIndex, 3)
        XCTAssertTrue(receive.availWrapCounter)
        XCTAssertEqual(transmit.lastAvailIndex, 5)
        XCTAssertFalse(transmit.availWrapCounter)
        XCTAssertEqual(transmit.lastUsedIndex, 5, "the used position starts at the avail position")
        XCTAssertFalse(transmit.usedWrapCounter)
        let info = session.info.vrings
        XCTAssertEqual(info.map(\.ringLayout), [.packed, .packed])
        XCTAssertEqual(info.map(\.wrapCounter), [true, false])
        XCTAssertEqual(info.map(\.lastAvailIndex), [3, 5])
        XCTAssertEqual(info.map(\.currentAvailIndex), [nil, nil], "a packed ring has no avail index in memory")

        let reply0 = try session.frontend.request(.getVringBase, FakeFrontend.vringState(index: 0, num: 0))
        // Bits 16-31: the used position, equal to the avail one (QEMU reads it there).
        XCTAssertEqual(reply0?.payload, FakeFrontend.vringState(index: 0, num: 0x8003_8003))
        let reply1 = try session.frontend.request(.getVringBase, FakeFrontend.vringState(index: 1, num: 0))
        XCTAssertEqual(reply1?.payload, FakeFrontend.vringState(index: 1, num: 0x0005_0005))
    }

    func testTheQueueReadsTheRingAtTheAddressesGiven() throws {
        let session = try DirectSession()
        let memory = try FakeFrontendMemory()
        // A fresh packed ring starts at slot 0 with wrap counter 1: front-ends send 0x8000.
        try session.makeReady(memory: memory, kicks: [try EventFD(), try EventFD()], bases: [0x8000, 0x8000], features: Self.packed)
        let transmit = try XCTUnwrap(session.delegate.queues[1].queue.packed)
        // One 72-byte transmit buffer in slot 0 of ring 1 (descriptor ring at +0 of its stride).
        let ringOffset = Int(FakeFrontendMemory.ringStride)
        let bufferGPA: UInt64 = 0x80000
        memory.mapping.base.storeBytes(of: bufferGPA, toByteOffset: ringOffset, as: UInt64.self)
        memory.mapping.base.storeBytes(of: UInt32(72), toByteOffset: ringOffset + 8, as: UInt32.self)
        memory.mapping.base.storeBytes(of: UInt16(7), toByteOffset: ringOffset + 12, as: UInt16.self)
        memory.mapping.base.storeBytes(of: UInt16(1 << 7), toByteOffset: ringOffset + 14, as: UInt16.self)
        for i in 0..<60 { memory.mapping.base.storeBytes(of: UInt8(i), toByteOffset: Int(bufferGPA) + 12 + i, as: UInt8.self) }
        XCTAssertTrue(transmit.hasAvailableBuffers())
        let data = UnsafeMutableRawPointer.allocate(byteCount: 2048, alignment: 16)
        defer { data.deallocate() }
        var packet = PacketBuffer(data: data, capacity: 2048)
        XCTAssertEqual(transmit.dequeueBurst(into: &packet, maxCount: 1), 1)
        XCTAssertEqual(packet.length, 60)
        XCTAssertEqual(memory.mapping.base.load(fromByteOffset: ringOffset + 12, as: UInt16.self), 7, "used id")
        XCTAssertEqual(memory.mapping.base.load(fromByteOffset: ringOffset + 14, as: UInt16.self), 1 << 7 | 1 << 15, "used flags")
        let reply = try session.frontend.request(.getVringBase, FakeFrontend.vringState(index: 1, num: 0))
        XCTAssertEqual(reply?.payload, FakeFrontend.vringState(index: 1, num: 0x8001_8001))
    }

    func testPackedRingSizeNeedNotBeAPowerOfTwo() throws {
        let session = try DirectSession()
        let memory = try FakeFrontendMemory()
        try session.negotiate(memory: memory, features: Self.packed)
        XCTAssertEqual(try session.frontend.acked(.setVringNum, FakeFrontend.vringState(index: 0, num: 100)), 0)
        XCTAssertNotEqual(try session.frontend.acked(.setVringNum, FakeFrontend.vringState(index: 0, num: 32769)), 0)

        let split = try DirectSession()
        try split.negotiate(memory: memory)
        XCTAssertNotEqual(try split.frontend.acked(.setVringNum, FakeFrontend.vringState(index: 0, num: 100)), 0)
    }

    /// QEMU sends avail | used << 16 (0x80008000 for a fresh ring): the avail half counts.
    func testQemuStyleBaseWithUsedPositionInTheUpperBitsIsAccepted() throws {
        let session = try DirectSession()
        let memory = try FakeFrontendMemory()
        try session.makeReady(memory: memory, kicks: [try EventFD(), try EventFD()], bases: [0x8000_8000, 0x0007_0007], features: Self.packed)
        let queues = session.delegate.queues.compactMap { $0.queue.packed }
        XCTAssertEqual(queues.map(\.lastAvailIndex), [0, 7])
        XCTAssertEqual(queues.map(\.availWrapCounter), [true, false])
        XCTAssertEqual(queues.map(\.lastUsedIndex), [0, 7])
        let split = try DirectSession()
        try split.negotiate(memory: memory)
        XCTAssertNotEqual(try split.frontend.acked(.setVringBase, FakeFrontend.vringState(index: 0, num: 0x8000_8000)), 0,
                          "a split ring's base is 16 bits")
    }

    func testPackedRingWithoutSetVringBaseStartsAtSlotZeroWrapOne() throws {
        let session = try DirectSession()
        let memory = try FakeFrontendMemory()
        try session.negotiate(memory: memory, features: Self.packed)
        for ring in 0..<2 {
            let i = UInt32(ring)
            XCTAssertEqual(try session.frontend.acked(.setVringNum, FakeFrontend.vringState(index: i, num: 256)), 0)
            XCTAssertEqual(try session.frontend.acked(.setVringAddr, memory.vringAddressPayload(ring)), 0)
            XCTAssertEqual(try session.frontend.acked(.setVringKick, FakeFrontend.vringFile(index: UInt64(i), noFd: true)), 0)
            XCTAssertTrue(try session.frontend.enableRing(ring))
        }
        let queues = session.delegate.queues.compactMap { $0.queue.packed }
        XCTAssertEqual(queues.count, 2)
        XCTAssertEqual(queues.map(\.vringBase), [0x8000, 0x8000])
        let reply = try session.frontend.request(.getVringBase, FakeFrontend.vringState(index: 0, num: 0))
        XCTAssertEqual(reply?.payload, FakeFrontend.vringState(index: 0, num: 0x8000_8000))
    }

    func testPackedBaseIndexOutsideTheRingIsRefused() throws {
        let session = try DirectSession()
        let memory = try FakeFrontendMemory()
        try session.negotiate(memory: memory, features: Self.packed)
        XCTAssertEqual(try session.frontend.acked(.setVringNum, FakeFrontend.vringState(index: 0, num: 256)), 0)
        XCTAssertNotEqual(try session.frontend.acked(.setVringBase, FakeFrontend.vringState(index: 0, num: 0x8000 | 256)), 0)
        XCTAssertEqual(try session.frontend.acked(.setVringBase, FakeFrontend.vringState(index: 0, num: 0x8000 | 255)), 0)
    }

    func testPackedEventAreasOutsideMemoryAreRefused() throws {
        let session = try DirectSession()
        let memory = try FakeFrontendMemory()
        try session.negotiate(memory: memory, features: Self.packed)
        XCTAssertEqual(try session.frontend.acked(.setVringNum, FakeFrontend.vringState(index: 0, num: 256)), 0)
        let a = memory.ringAddresses(0)
        let outside = memory.userspaceAddress + memory.size
        XCTAssertNotEqual(try session.frontend.acked(.setVringAddr, FakeFrontend.vringAddress(index: 0, descriptor: a.descriptor, used: outside, avail: a.avail)), 0)
        XCTAssertNotEqual(try session.frontend.acked(.setVringAddr, FakeFrontend.vringAddress(index: 0, descriptor: a.descriptor, used: a.used, avail: a.avail + 2)), 0,
                          "event areas are 4-byte aligned")
        XCTAssertEqual(try session.frontend.acked(.setVringAddr, FakeFrontend.vringAddress(index: 0, descriptor: a.descriptor, used: a.used, avail: a.avail)), 0)
    }
}
