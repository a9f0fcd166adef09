import TestSupport
import VhostSystem
import VhostUser
import Virtio
import XCTest

/// Live hand-over of one session: exported by the old process with its queues withdrawn,
/// adopted by the new one (fds duplicated here, as SCM_RIGHTS would), which must resume the
/// rings exactly where they stopped and refuse any state a front-end could not have made.
final class VhostUserHandoverTests: XCTestCase {
    /// A ready session whose transmit ring moved 3 frames, exported.
    private func exportedSession() throws -> (DirectSession, FakeFrontendMemory, VhostUserSessionExport, [FileDescriptor]) {
        let session = try DirectSession()
        let memory = try FakeFrontendMemory()
        try session.makeReady(memory: memory, kicks: [try EventFD(), try EventFD()])
        let transmit = try XCTUnwrap(session.delegate.queues.first { $0.vringIndex == 1 }?.queue)
        post(3, on: memory)
        XCTAssertEqual(try drain(transmit), 3)
        var borrowed: [FileDescriptor] = []
        let export = session.connection.exportForHandover(into: &borrowed)
        XCTAssertTrue(session.delegate.queues.isEmpty, "the queues are withdrawn before the export")
        // What the new process receives: copies of the same files and sockets.
        let received = try borrowed.map { try FileDescriptor.duplicate($0.rawValue) }
        return (session, memory, export, received)
    }

    /// `count` more 72-byte frames on the transmit ring, one descriptor each.
    private func post(_ count: Int, on memory: FakeFrontendMemory) {
        let ring = memory.ring(1)
        var index = ring.availIndex
        for _ in 0..<count {
            let slot = Int(index) % FakeFrontendMemory.ringSize
            ring.writeDescriptor(slot, address: UInt64(0x10000 + slot * 128), length: 72)
            ring.writeAvailSlot(index, head: UInt16(slot))
            index &+= 1
        }
        ring.setAvailIndex(index)
    }

    private func drain(_ queue: Virtqueue) throws -> Int {
        let buffers = UnsafeMutablePointer<PacketBuffer>.allocate(capacity: 8)
        let data = UnsafeMutableRawPointer.allocate(byteCount: 8 * 2048, alignment: 64)
        defer { buffers.deallocate(); data.deallocate() }
        for i in 0..<8 { (buffers + i).initialize(to: PacketBuffer(data: data + i * 2048, capacity: 2048)) }
        let split = try XCTUnwrap(queue.split)
        return split.dequeueBurst(into: buffers, maxCount: 8)
    }

    private func newDevice(_ delegate: RecordingDeviceDelegate) throws -> VhostUserDevice {
        try VhostUserDevice(configuration: VhostUserDeviceConfiguration(name: "test0", socketPath: "/nonexistent/test0.sock",
                                                                        maxQueuePairs: 2, offeredFeatures: DirectSession.features),
                            delegate: delegate)
    }

    private func adopt(_ export: VhostUserSessionExport, _ received: [FileDescriptor],
                       _ delegate: RecordingDeviceDelegate = RecordingDeviceDelegate()) throws -> VhostUserConnection {
        let descriptors = VhostUserHandoverDescriptors(received)
        defer { descriptors.closeRemaining() }
        let socket = try descriptors.take(export.socket, for: "session")
        return try VhostUserConnection.adopt(device: try newDevice(delegate), socket: socket, export: export, descriptors: descriptors)
    }

    func testExportNamesEveryFdOnceAndTheRingPositions() throws {
        let (_, _, export, received) = try exportedSession()
        XCTAssertEqual(Set(export.descriptorIndices).count, export.descriptorIndices.count)
        XCTAssertEqual(export.descriptorIndices.count, received.count)
        XCTAssertEqual(export.memoryRegions.count, 1)
        let transmit = try XCTUnwrap(export.vrings.first { $0.index == 1 })
        XCTAssertEqual(transmit.position, .init(lastAvailIndex: 3, lastUsedIndex: 3))
        XCTAssertTrue(transmit.started)
        XCTAssertEqual(transmit.enabled, true)
        XCTAssertNotNil(transmit.kick)
    }

    func testAdoptedSessionKeepsItsRingsMoving() throws {
        let (old, memory, export, received) = try exportedSession()
        let delegate = RecordingDeviceDelegate()
        let adopted = try adopt(export, received, delegate)
        XCTAssertEqual(delegate.queues.map(\.vringIndex), [0, 1], "published as after a handshake")
        XCTAssertFalse(delegate.events.contains(.connected), "not a new connection")
        XCTAssertEqual(adopted.negotiatedFeatures, old.connection.negotiatedFeatures)
        XCTAssertEqual(adopted.device.info().state, .ready)
        let transmit = try XCTUnwrap(delegate.queues.first { $0.vringIndex == 1 }?.queue)
        XCTAssertEqual(transmit.lastAvailIndex, 3, "resumes where the old queue stopped")
        post(2, on: memory)
        XCTAssertEqual(try drain(transmit), 2, "the frames sent after the hand-over, and only those")
        XCTAssertEqual(memory.ring(1).usedIndex, 5)
        // The front-end goes on talking to the new process over the same socket.
        old.frontend.pump = { _ = adopted.handleReadable() }
        XCTAssertEqual(try old.frontend.request(.getFeatures)?.u64, export.offeredFeatures)
        adopted.close(reason: nil)
    }

    func testFdIndexOutOfRangeRefused() throws {
        var (_, _, export, received) = try exportedSession()
        export.vrings[0].call = received.count + 4
        XCTAssertThrowsError(try adopt(export, received)) { error in
            XCTAssertTrue("\(error)".contains("outside the"), "\(error)")
        }
    }

    func testFdNamedTwiceRefused() throws {
        var (_, _, export, received) = try exportedSession()
        export.vrings[1].kick = export.vrings[0].kick
        XCTAssertThrowsError(try adopt(export, received)) { error in
            XCTAssertTrue("\(error)".contains("named twice"), "\(error)")
        }
    }

    func testSplitRingSizeNotPowerOfTwoRefused() throws {
        var (_, _, export, received) = try exportedSession()
        export.vrings[0].size = 100
        XCTAssertThrowsError(try adopt(export, received)) { error in
            XCTAssertTrue("\(error)".contains("power of two"), "\(error)")
        }
    }

    func testMemoryRegionBeyondItsFileRefused() throws {
        var (_, _, export, received) = try exportedSession()
        export.memoryRegions[0].region.size = 1 << 30
        XCTAssertThrowsError(try adopt(export, received)) { error in
            XCTAssertTrue("\(error)".contains("backing file"), "\(error)")
        }
    }

    /// Refused after the memory was mapped and fds were taken: every fd received is closed
    /// (the session's own copies too), none leaks.
    func testRingAddressOutsideMemoryRefusedWithoutLeaks() throws {
        var (_, _, export, received) = try exportedSession()
        export.vrings[1].addresses?.used = 1 << 40
        let before = FileDescriptor.openCount()
        XCTAssertThrowsError(try adopt(export, received)) { error in
            XCTAssertTrue("\(error)".contains("not in guest memory"), "\(error)")
        }
        XCTAssertEqual(FileDescriptor.openCount(), before - received.count, "every received fd closed, nothing else left open")
    }

    func testFeaturesNotOfferedRefused() throws {
        var (_, _, export, received) = try exportedSession()
        export.offeredFeatures &= ~VhostUserDevice.protocolFeaturesFeature
        XCTAssertThrowsError(try adopt(export, received)) { error in
            XCTAssertTrue("\(error)".contains("not offered"), "\(error)")
        }
    }

    func testWrapCountersOnASplitRingRefused() throws {
        var (_, _, export, received) = try exportedSession()
        export.vrings[1].position?.availWrapCounter = true
        XCTAssertThrowsError(try adopt(export, received)) { error in
            XCTAssertTrue("\(error)".contains("wrap counters on a split ring"), "\(error)")
        }
    }

    func testNotASocketRefused() throws {
        var (_, memory, export, received) = try exportedSession()
        var withFile = received
        withFile.append(memory.duplicateFD())
        export.socket = withFile.count - 1
        XCTAssertThrowsError(try adopt(export, withFile)) { error in
            XCTAssertTrue("\(error)".contains("not a connected unix stream socket"), "\(error)")
        }
    }
}
