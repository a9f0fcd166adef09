import Synchronization
import TestSupport
import VhostSystem
import VhostUser
import Virtio
import XCTest

/// UNTRUSTED-INPUT.md "vhost-user messages": ring sizes, memory tables, ring addresses,
/// dirty logs, features, status, MTU and out-of-order sessions.
final class VhostUserRingAndMemoryTests: XCTestCase {
    private func negotiated(memory: FakeFrontendMemory? = nil) throws -> DirectSession {
        let session = try DirectSession()
        try session.negotiate(memory: memory)
        return session
    }

    private func ring(_ session: DirectSession, _ index: Int) -> VhostUserVringInfo? {
        session.info.vrings.first { $0.index == index }
    }

    // MARK: SET_VRING_NUM

    func testVringNumZeroRefused() throws {
        let session = try negotiated()
        XCTAssertEqual(try session.frontend.acked(.setVringNum, FakeFrontend.vringState(index: 0, num: 0)), 1)
        XCTAssertNil(ring(session, 0)?.size)
    }

    func testVringNumNotPowerOfTwoRefused() throws {
        let session = try negotiated()
        XCTAssertEqual(try session.frontend.acked(.setVringNum, FakeFrontend.vringState(index: 0, num: 255)), 1)
        XCTAssertEqual(try session.frontend.acked(.setVringNum, FakeFrontend.vringState(index: 0, num: 384)), 1)
        XCTAssertNil(ring(session, 0)?.size)
    }

    func testVringNumAbove32768Refused() throws {
        let session = try negotiated()
        XCTAssertEqual(try session.frontend.acked(.setVringNum, FakeFrontend.vringState(index: 0, num: 65536)), 1)
        XCTAssertEqual(try session.frontend.acked(.setVringNum, FakeFrontend.vringState(index: 0, num: 32768)), 0)
        XCTAssertEqual(ring(session, 0)?.size, 32768)
    }

    func testVringNumRepeatedReplacesWithoutLeak() throws {
        let session = try negotiated(memory: try FakeFrontendMemory())
        try assertNoFdLeak {
            for size: UInt32 in [64, 128, 256, 128] {
                XCTAssertEqual(try session.frontend.acked(.setVringNum, FakeFrontend.vringState(index: 1, num: size)), 0)
            }
        }
        XCTAssertEqual(ring(session, 1)?.size, 128)
    }

    // MARK: SET_MEM_TABLE

    func testMemTableMoreThanEightRegionsRefused() throws {
        let session = try negotiated()
        let memory = try FakeFrontendMemory()
        // Nine regions declared in a payload the size of eight (the largest accepted).
        let regions = (0..<8).map { _ in memory.descriptor }
        XCTAssertEqual(try session.frontend.acked(.setMemTable, FakeFrontend.memoryTable(regions, declaredCount: 9), fds: Array(repeating: memory.fd, count: 8)), 1)
        // Nine regions in full: the payload is larger than SET_MEM_TABLE's largest.
        XCTAssertEqual(try session.frontend.acked(.setMemTable, FakeFrontend.memoryTable(regions + [memory.descriptor]), fds: Array(repeating: memory.fd, count: 8)), 1)
        XCTAssertTrue(session.info.memoryRegions.isEmpty)
        XCTAssertEqual(session.device.refusedRequestCount, 2)
    }

    func testMemTableRegionSizeZeroRefused() throws {
        let session = try negotiated()
        let memory = try FakeFrontendMemory()
        var region = memory.descriptor
        region.size = 0
        XCTAssertEqual(try session.frontend.acked(.setMemTable, FakeFrontend.memoryTable([region]), fds: [memory.fd]), 1)
        XCTAssertTrue(session.info.memoryRegions.isEmpty)
    }

    func testMemTableZeroRegionsRefused() throws {
        let session = try negotiated()
        XCTAssertEqual(try session.frontend.acked(.setMemTable, FakeFrontend.memoryTable([])), 1)
        XCTAssertTrue(session.info.memoryRegions.isEmpty)
    }

    func testMemTableGuestAddressWrapsRefused() throws {
        let session = try negotiated()
        let memory = try FakeFrontendMemory()
        var region = memory.descriptor
        region.guestPhysicalAddress = UInt64.max - 4095
        XCTAssertEqual(try session.frontend.acked(.setMemTable, FakeFrontend.memoryTable([region]), fds: [memory.fd]), 1)
        region = memory.descriptor
        region.userspaceAddress = UInt64.max - 4095
        XCTAssertEqual(try session.frontend.acked(.setMemTable, FakeFrontend.memoryTable([region]), fds: [memory.fd]), 1)
        XCTAssertTrue(session.info.memoryRegions.isEmpty)
    }

    func testMemTableOffsetWrapsRefused() throws {
        let session = try negotiated()
        let memory = try FakeFrontendMemory()
        var region = memory.descriptor
        region.mmapOffset = UInt64.max - 100
        XCTAssertEqual(try session.frontend.acked(.setMemTable, FakeFrontend.memoryTable([region]), fds: [memory.fd]), 1)
        XCTAssertTrue(session.info.memoryRegions.isEmpty)
    }

    func testMemTableOverlappingRegionsRefused() throws {
        let session = try negotiated()
        let a = try FakeFrontendMemory(), b = try FakeFrontendMemory(guestPhysicalAddress: 1 << 19, userspaceAddress: 0x7e00_0000_0000)
        try assertNoFdLeak {
            XCTAssertEqual(try session.frontend.acked(.setMemTable, FakeFrontend.memoryTable([a.descriptor, b.descriptor]), fds: [a.fd, b.fd]), 1)
            // Same guest range, different front-end addresses, and the reverse.
            var c = b.descriptor
            c.guestPhysicalAddress = 1 << 30
            c.userspaceAddress = a.userspaceAddress + 4096
            XCTAssertEqual(try session.frontend.acked(.setMemTable, FakeFrontend.memoryTable([a.descriptor, c]), fds: [a.fd, b.fd]), 1)
        }
        XCTAssertTrue(session.info.memoryRegions.isEmpty)
    }

    func testMemTableUnmappableFdRefused() throws {
        let session = try negotiated()
        let memory = try FakeFrontendMemory()
        let (socketA, socketB) = try UnixSocket.pair()
        let event = try EventFD()
        try assertNoFdLeak {
            XCTAssertEqual(try session.frontend.acked(.setMemTable, FakeFrontend.memoryTable([memory.descriptor]), fds: [socketA]), 1)
            XCTAssertEqual(try session.frontend.acked(.setMemTable, FakeFrontend.memoryTable([memory.descriptor]), fds: [event.descriptor]), 1)
        }
        XCTAssertTrue(session.info.memoryRegions.isEmpty)
        _ = socketB
    }

    func testMemTableFileShorterThanOffsetPlusSizeRefused() throws {
        let session = try negotiated()
        let memory = try FakeFrontendMemory(size: 1 << 16)
        var region = memory.descriptor
        region.size = 1 << 17
        XCTAssertEqual(try session.frontend.acked(.setMemTable, FakeFrontend.memoryTable([region]), fds: [memory.fd]), 1)
        region = memory.descriptor
        region.mmapOffset = 4096
        XCTAssertEqual(try session.frontend.acked(.setMemTable, FakeFrontend.memoryTable([region]), fds: [memory.fd]), 1)
        XCTAssertTrue(session.info.memoryRegions.isEmpty)
    }

    // MARK: SET_VRING_ADDR

    func testVringAddrOutsideMemoryRefused() throws {
        let memory = try FakeFrontendMemory()
        let session = try negotiated(memory: memory)
        XCTAssertEqual(try session.frontend.acked(.setVringNum, FakeFrontend.vringState(index: 0, num: 256)), 0)
        let payload = FakeFrontend.vringAddress(index: 0, descriptor: 0x1000, used: 0x3000, avail: 0x2000)
        XCTAssertEqual(try session.frontend.acked(.setVringAddr, payload), 1)
        XCTAssertNil(ring(session, 0)?.descriptorAddress)
    }

    func testVringAddrPartlyMappedRefused() throws {
        let memory = try FakeFrontendMemory(size: 1 << 16)
        let session = try negotiated(memory: memory)
        XCTAssertEqual(try session.frontend.acked(.setVringNum, FakeFrontend.vringState(index: 0, num: 256)), 0)
        let end = memory.userspaceAddress + memory.size
        // The used ring (6 + 8 * 256 bytes) starts 1 KiB before the end of the region.
        let payload = FakeFrontend.vringAddress(index: 0, descriptor: memory.userspaceAddress, used: end - 1024, avail: memory.userspaceAddress + 0x1000)
        XCTAssertEqual(try session.frontend.acked(.setVringAddr, payload), 1)
        XCTAssertNil(ring(session, 0)?.descriptorAddress)
    }

    func testVringAddrAcrossRegionsRefused() throws {
        let session = try negotiated()
        let a = try FakeFrontendMemory(size: 1 << 16, guestPhysicalAddress: 0, userspaceAddress: 0x7f00_0000_0000)
        let b = try FakeFrontendMemory(size: 1 << 16, guestPhysicalAddress: 1 << 16, userspaceAddress: 0x7f00_0001_0000)
        XCTAssertEqual(try session.frontend.acked(.setMemTable, FakeFrontend.memoryTable([a.descriptor, b.descriptor]), fds: [a.fd, b.fd]), 0)
        XCTAssertEqual(try session.frontend.acked(.setVringNum, FakeFrontend.vringState(index: 0, num: 256)), 0)
        // The descriptor table (4 KiB) starts 2 KiB before the boundary of two adjacent regions.
        let payload = FakeFrontend.vringAddress(index: 0, descriptor: b.userspaceAddress - 2048, used: b.userspaceAddress + 0x2000, avail: b.userspaceAddress + 0x1000)
        XCTAssertEqual(try session.frontend.acked(.setVringAddr, payload), 1)
        XCTAssertNil(ring(session, 0)?.descriptorAddress)
        XCTAssertEqual(session.info.memoryRegions.count, 2)
    }

    func testVringAddrBeforeMemTableRefused() throws {
        let memory = try FakeFrontendMemory()
        let session = try negotiated()
        XCTAssertEqual(try session.frontend.acked(.setVringNum, FakeFrontend.vringState(index: 0, num: 256)), 0)
        XCTAssertEqual(try session.frontend.acked(.setVringAddr, memory.vringAddressPayload(0)), 1)
        XCTAssertEqual(session.info.lastError, VhostUserProtocolError.noMemoryTable(.setVringAddr).description)
        XCTAssertTrue(session.delegate.errors.contains { $0.contains("before SET_MEM_TABLE") })
    }

    func testKickBeforeAddrRefused() throws {
        let memory = try FakeFrontendMemory()
        let session = try negotiated(memory: memory)
        let kick = try EventFD()
        XCTAssertEqual(try session.frontend.acked(.setVringNum, FakeFrontend.vringState(index: 0, num: 256)), 0)
        try assertNoFdLeak {
            XCTAssertEqual(try session.frontend.acked(.setVringKick, FakeFrontend.vringFile(index: 0), fds: [kick.descriptor]), 1)
        }
        XCTAssertEqual(ring(session, 0)?.started, false)
        XCTAssertEqual(ring(session, 0)?.hasKick, false)
    }

    // MARK: SET_LOG_BASE

    private func logFile(size: Int) throws -> FileDescriptor { try MemFD.create(name: "log", size: size) }

    func testLogBaseOffsetPlusSizeOverflowRefused() throws {
        let session = try DirectSession()
        try session.negotiate(memory: try FakeFrontendMemory())
        let log = try logFile(size: 4096)
        try session.frontend.send(.setLogBase, FakeFrontend.logBase(size: 64, offset: UInt64.max - 10), fds: [log])
        XCTAssertTrue(session.frontend.waitForClose(), "LOG_SHMFD: the reply cannot be a success, the session ends")
        guard case .dirtyLogRefused(let text) = session.connection.closeReason else { return XCTFail("\(String(describing: session.connection.closeReason))") }
        XCTAssertTrue(text.contains("overflows"))
        XCTAssertFalse(session.info.dirtyLogging)
    }

    func testLogBaseTooSmallRefused() throws {
        let session = try DirectSession()
        // Without LOG_SHMFD the refusal is a REPLY_ACK failure.
        XCTAssertTrue(try session.frontend.negotiate(features: DirectSession.features,
                                                     protocolFeatures: VhostUserProtocolFeature.replyAck.mask, memory: nil))
        let memory = try FakeFrontendMemory(size: 1 << 20, guestPhysicalAddress: 1 << 30)
        XCTAssertEqual(try session.frontend.acked(.setMemTable, FakeFrontend.memoryTable([memory.descriptor]), fds: [memory.fd]), 0)
        let needed = ((1 << 30) + (1 << 20)) / 4096 / 8
        let log = try logFile(size: needed)
        XCTAssertEqual(try session.frontend.acked(.setLogBase, FakeFrontend.logBase(size: UInt64(needed) - 1, offset: 0), fds: [log]), 1)
        XCTAssertEqual(try session.frontend.acked(.setLogBase, FakeFrontend.logBase(size: UInt64(needed), offset: 0), fds: [log]), 0)
        // A file shorter than offset + size.
        XCTAssertEqual(try session.frontend.acked(.setLogBase, FakeFrontend.logBase(size: UInt64(needed), offset: 4096), fds: [log]), 1)
        XCTAssertEqual(session.device.refusedRequestCount, 2)
    }

    func testLogBaseWrongPayloadSizeRefused() throws {
        let session = try DirectSession()
        try session.negotiate(memory: try FakeFrontendMemory())
        let log = try logFile(size: 4096)
        try session.frontend.send(.setLogBase, FakeFrontend.u64(4096), fds: [log])
        XCTAssertTrue(session.frontend.waitForClose())
        XCTAssertEqual(session.connection.closeReason, .wrongPayloadSize(.setLogBase, size: 8, expected: "16"))
    }

    func testLogBaseRepliesWithEmptyPayloadWhenLogShmfdNegotiated() throws {
        let session = try DirectSession()
        try session.negotiate(memory: try FakeFrontendMemory())
        let log = try logFile(size: 4096)
        let reply = try session.frontend.request(.setLogBase, FakeFrontend.logBase(size: 4096, offset: 0), fds: [log])
        XCTAssertEqual(reply?.request, VhostUserRequest.setLogBase.rawValue)
        XCTAssertEqual(reply?.payload, [])
        XCTAssertFalse(session.info.dirtyLogging, "logging starts with LOG_ALL")
    }

    // MARK: Features, status, MTU

    func testFeaturesNotOfferedRefused() throws {
        let session = try DirectSession(offered: VhostUserDevice.defaultOfferedFeatures & ~(1 << 15))
        XCTAssertTrue(try session.frontend.negotiate(features: 1 << 30 | 1 << 32, memory: nil))
        XCTAssertEqual(try session.frontend.acked(.setFeatures, FakeFrontend.u64(1 << 30 | 1 << 15)), 1, "MRG_RXBUF not offered")
        XCTAssertEqual(try session.frontend.acked(.setFeatures, FakeFrontend.u64(1 << 30 | 1 << 18)), 1, "CTRL_RX never offered")
        XCTAssertEqual(session.info.negotiatedFeatures, 1 << 30 | 1 << 32)
    }

    func testNonLogAllFeatureChangeWhileRunningRefused() throws {
        let session = try DirectSession()
        let memory = try FakeFrontendMemory()
        try session.makeReady(memory: memory, kicks: [try EventFD(), try EventFD()])
        XCTAssertEqual(session.info.state, .ready)
        XCTAssertEqual(try session.frontend.acked(.setFeatures, FakeFrontend.u64(DirectSession.features & ~(1 << 29))), 1)
        XCTAssertEqual(session.info.negotiatedFeatures, DirectSession.features)
        XCTAssertEqual(session.delegate.queues.map(\.vringIndex), [0, 1], "the refusal leaves the queues published")
        // LOG_ALL alone may change: migration logging on, then off.
        XCTAssertEqual(try session.frontend.acked(.setFeatures, FakeFrontend.u64(DirectSession.features | VhostUserDevice.logAllFeature)), 0)
        XCTAssertEqual(try session.frontend.acked(.setFeatures, FakeFrontend.u64(DirectSession.features)), 0)
        XCTAssertEqual(session.delegate.count(.migration(.loggingStarted)), 1)
        XCTAssertEqual(session.delegate.count(.migration(.loggingStopped)), 1)
    }

    func testStatusAbove0xffRefused() throws {
        let session = try negotiated()
        XCTAssertEqual(try session.frontend.request(.getStatus)?.u64, FakeFrontend.driverReadyStatus)
        XCTAssertEqual(try session.frontend.acked(.setStatus, FakeFrontend.u64(0x100)), 1)
        XCTAssertEqual(try session.frontend.request(.getStatus)?.u64, FakeFrontend.driverReadyStatus, "a refused status changes nothing")
        XCTAssertEqual(try session.frontend.acked(.setStatus, FakeFrontend.u64(0x0b)), 0)
        XCTAssertEqual(try session.frontend.request(.getStatus)?.u64, 0x0b)
    }

    func testMtuOutsideRangeRefused() throws {
        let session = try negotiated()
        XCTAssertEqual(try session.frontend.acked(.netSetMtu, FakeFrontend.u64(67)), 1)
        XCTAssertEqual(try session.frontend.acked(.netSetMtu, FakeFrontend.u64(65536)), 1)
        XCTAssertNil(session.info.mtu)
        XCTAssertEqual(try session.frontend.acked(.netSetMtu, FakeFrontend.u64(9000)), 0)
        XCTAssertEqual(session.info.mtu, 9000)
        XCTAssertEqual(session.delegate.count(.mtu(9000)), 1)
    }

    // MARK: Out of order, replacement, half-configured state

    func testMemTableReplacedWhileQueuesPublishedWithdrawsFirst() throws {
        let session = try DirectSession()
        let memory = try FakeFrontendMemory()
        memory.setUsedIndex(0, 7)
        memory.setUsedIndex(1, 3)
        try session.makeReady(memory: memory, kicks: [try EventFD(), try EventFD()], bases: [7, 3])
        let old = session.delegate.queues
        XCTAssertEqual(old.map(\.vringIndex), [0, 1])
        XCTAssertEqual(old[0].queue.lastAvailIndex, 7)
        // At the moment the queues are withdrawn, the memory table must still be the old one.
        let memoryAtWithdrawal = Mutex<[GuestMemoryRegionDescriptor]?>(nil)
        let device = session.device
        session.delegate.onQueuesChanged.withLock {
            $0 = { queues in
                if queues.isEmpty { memoryAtWithdrawal.withLock { $0 = device.info().memoryRegions } }
            }
        }
        let replacement = try FakeFrontendMemory(size: 1 << 21, userspaceAddress: memory.userspaceAddress)
        replacement.setUsedIndex(0, 7)  // the guest's rings, as they are in the new mapping
        replacement.setUsedIndex(1, 3)
        session.delegate.clear()
        XCTAssertEqual(try session.frontend.acked(.setMemTable, FakeFrontend.memoryTable([replacement.descriptor]), fds: [replacement.fd]), 0)
        XCTAssertEqual(session.delegate.events, [.queuesChanged([]), .queuesChanged([0, 1])])
        XCTAssertEqual(memoryAtWithdrawal.withLock { $0 }, [memory.descriptor])
        let new = session.delegate.queues
        XCTAssertFalse(new[0].queue === old[0].queue)
        XCTAssertTrue(new[0].queue.memory !== old[0].queue.memory)
        XCTAssertEqual(new[0].queue.lastAvailIndex, 7, "indices survive the new memory table")
        XCTAssertEqual(new[1].queue.lastAvailIndex, 3)
        XCTAssertEqual(session.info.memoryRegions, [replacement.descriptor])
        session.delegate.onQueuesChanged.withLock { $0 = nil }
    }

    /// DPDK virtio-user grows its memory by disabling the rings, sending a bigger table and
    /// enabling them again: nothing is published while the table changes, and the rings
    /// must then be laid out in the NEW mappings (the old ones are unmapped with the old
    /// table; a queue left pointing there crashes the poll thread).
    func testMemTableReplacedWhileRingsDisabledLaysRingsOutInNewMemory() throws {
        let session = try DirectSession()
        let memory = try FakeFrontendMemory()
        try session.makeReady(memory: memory, kicks: [try EventFD(), try EventFD()])
        XCTAssertTrue(try session.frontend.enableRing(0, false))
        XCTAssertTrue(try session.frontend.enableRing(1, false))
        XCTAssertTrue(session.delegate.queues.isEmpty)
        let replacement = try FakeFrontendMemory(size: 1 << 22, userspaceAddress: memory.userspaceAddress)
        XCTAssertEqual(try session.frontend.acked(.setMemTable, FakeFrontend.memoryTable([replacement.descriptor]), fds: [replacement.fd]), 0)
        XCTAssertTrue(try session.frontend.enableRing(0))
        XCTAssertTrue(try session.frontend.enableRing(1))
        let queues = session.delegate.queues
        XCTAssertEqual(queues.map(\.vringIndex), [0, 1])
        // The guest's avail index lives in the replacement memory only.
        replacement.setAvailIndex(1, 5)
        memory.setAvailIndex(1, 9)
        XCTAssertEqual(queues[1].queue.split!.currentAvailIndex(), 5, "the ring reads the new memory table")
    }

    /// DPDK virtio-user reconnecting to a restarted switch sends SET_VRING_BASE 0 while its
    /// rings are thousands of entries further: the queue must resume at the used index in
    /// guest memory, not treat the ring as broken.
    func testReconnectWithBaseZeroResumesFromUsedIndexInGuestMemory() throws {
        let session = try DirectSession()
        let memory = try FakeFrontendMemory()
        memory.setUsedIndex(0, 11312)
        memory.setAvailIndex(0, 11568)
        memory.setUsedIndex(1, 11376)
        memory.setAvailIndex(1, 11376)
        try session.makeReady(memory: memory, kicks: [try EventFD(), try EventFD()], bases: [0, 0])
        let queues = session.delegate.queues
        XCTAssertEqual(queues.map(\.vringIndex), [0, 1])
        XCTAssertEqual(queues[0].queue.lastAvailIndex, 11312)
        XCTAssertEqual(queues[1].queue.lastAvailIndex, 11376)
        XCTAssertFalse(queues[1].queue.isBroken)
    }

    /// A head consumed without a used entry (out of range) leaves the used index behind the
    /// avail position. A queue rebuilt while the ring runs (here: the ring disabled and
    /// enabled again; in a migration: SET_LOG_BASE, SET_FEATURES) must resume from both
    /// positions, not rewind to the used index and take the avail entries after it again.
    func testQueueRebuiltWhileRunningKeepsBothPositions() throws {
        let session = try DirectSession()
        let memory = try FakeFrontendMemory()
        try session.makeReady(memory: memory, kicks: [try EventFD(), try EventFD()])
        // Ring 1 (transmit): avail ring[0] = head 999, outside a ring of 256.
        let availRing = Int(FakeFrontendMemory.ringStride + 0x1000 + 4)
        memory.mapping.base.storeBytes(of: UInt16(999).littleEndian, toByteOffset: availRing, as: UInt16.self)
        memory.setAvailIndex(1, 1)
        let buffers = UnsafeMutablePointer<PacketBuffer>.allocate(capacity: 4)
        let data = UnsafeMutableRawPointer.allocate(byteCount: 4 * 2048, alignment: 64)
        defer { buffers.deallocate(); data.deallocate() }
        for i in 0..<4 { (buffers + i).initialize(to: PacketBuffer(data: data + i * 2048, capacity: 2048)) }
        let transmit = try XCTUnwrap(session.delegate.queues.first { $0.vringIndex == 1 }?.queue.split)
        XCTAssertEqual(transmit.dequeueBurst(into: buffers, maxCount: 4), 0)
        XCTAssertEqual(transmit.lastAvailIndex, 1)
        XCTAssertEqual(transmit.lastUsedIndex, 0, "no used entry for an invalid head")
        XCTAssertTrue(try session.frontend.enableRing(1, false))
        XCTAssertTrue(try session.frontend.enableRing(1))
        let rebuilt = try XCTUnwrap(session.delegate.queues.first { $0.vringIndex == 1 }?.queue.split)
        XCTAssertFalse(rebuilt === transmit)
        XCTAssertEqual(rebuilt.lastAvailIndex, 1, "the consumed head is not taken again")
        XCTAssertEqual(rebuilt.lastUsedIndex, 0)
        XCTAssertEqual(rebuilt.dequeueBurst(into: buffers, maxCount: 4), 0)
        XCTAssertEqual(rebuilt.settings.statistics.snapshot().invalidHeads, 1, "counted once, not twice")
    }

    func testReplyAckFailureLeavesNothingHalfConfigured() throws {
        let session = try DirectSession()
        let memory = try FakeFrontendMemory()
        try session.makeReady(memory: memory, kicks: [try EventFD(), try EventFD()])
        let before = session.delegate.queues
        // A refused address change: ring 0 keeps its old, valid addresses.
        XCTAssertEqual(try session.frontend.acked(.setVringAddr, FakeFrontend.vringAddress(index: 0, descriptor: 0x10, used: 0x20, avail: 0x30)), 1)
        // A refused memory table: the old one stays.
        var bad = memory.descriptor
        bad.size = 0
        XCTAssertEqual(try session.frontend.acked(.setMemTable, FakeFrontend.memoryTable([bad]), fds: [memory.fd]), 1)
        // A refused size on a fresh ring, then everything else for it: never published.
        XCTAssertEqual(try session.frontend.acked(.setVringNum, FakeFrontend.vringState(index: 2, num: 1000)), 1)
        XCTAssertEqual(try session.frontend.acked(.setVringAddr, memory.vringAddressPayload(2)), 1, "no size: no addresses")
        XCTAssertEqual(try session.frontend.acked(.setVringKick, FakeFrontend.vringFile(index: 2, noFd: true)), 1)
        XCTAssertTrue(try session.frontend.enableRing(2))
        let after = session.delegate.queues
        XCTAssertTrue(after.isEmpty, "an enabled ring that is not configured holds the device back")
        XCTAssertEqual(session.info.state, .connected)
        XCTAssertTrue(try session.frontend.enableRing(2, false))
        let republished = session.delegate.queues
        XCTAssertEqual(republished.map(\.vringIndex), [0, 1])
        XCTAssertEqual(republished[0].queue.split!.layout.descriptorTable, before[0].queue.split!.layout.descriptorTable)
        XCTAssertEqual(session.info.memoryRegions, [memory.descriptor])
        XCTAssertNil(session.info.vrings.first { $0.index == 2 }?.size)
    }
}
