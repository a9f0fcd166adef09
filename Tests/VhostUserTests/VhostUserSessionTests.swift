import Foundation
import TestSupport
import VhostSystem
import VhostUser
import Virtio
import XCTest

/// Whole sessions: the positive path, ring stop/restart, migration events, resets,
/// memory hotplug, and front-ends that misbehave at the session level.
final class VhostUserSessionTests: XCTestCase {
    func testRequestTableCoversEveryRequest() {
        for request in VhostUserRequest.allCases {
            let rule = VhostUserMessageRule.rule(for: request)
            if case .exact(let size) = rule.payload { XCTAssertLessThanOrEqual(size, VhostUserHeader.maxPayloadSize) }
            if rule.reply == .always { XCTAssertTrue(request.description.hasPrefix("GET_"), "\(request)") }
        }
        XCTAssertNil(VhostUserRequest(rawValue: 0))
        XCTAssertEqual(VhostUserProtocolFeature.names(of: VhostUserProtocolFeature.supportedMask),
                       ["mq", "log_shmfd", "rarp", "reply_ack", "mtu", "reset_device", "configure_mem_slots", "status"])
        XCTAssertEqual(VhostUserProtocolFeature.supportedMask, 0x1_a01f)
    }

    /// QEMU clears the status (SET_STATUS 0) before GET_VRING_BASE when it stops a device
    /// (migration, shutdown): the rings are the driver's again from that message on.
    func testClearingDriverOKWithdrawsTheQueuesAndSettingItRepublishes() throws {
        let session = try DirectSession()
        let memory = try FakeFrontendMemory()
        let kicks = [try EventFD(), try EventFD()]
        try session.makeReady(memory: memory, kicks: kicks)
        XCTAssertEqual(session.delegate.queues.map(\.vringIndex), [0, 1])
        XCTAssertEqual(try session.frontend.acked(.setStatus, FakeFrontend.u64(0)), 0)
        XCTAssertTrue(session.delegate.queues.isEmpty, "SET_STATUS 0 withdraws the queues")
        XCTAssertEqual(session.info.state, .connected)
        XCTAssertEqual(try session.frontend.acked(.setStatus, FakeFrontend.u64(FakeFrontend.driverReadyStatus)), 0)
        XCTAssertEqual(session.delegate.queues.map(\.vringIndex), [0, 1], "DRIVER_OK again: the rings run again")
    }

    /// A front-end without the STATUS protocol feature never sends a status: ring readiness
    /// alone starts the device.
    func testWithoutStatusFeatureRingsStartWithoutDriverOK() throws {
        let session = try DirectSession()
        let memory = try FakeFrontendMemory()
        XCTAssertTrue(try session.frontend.negotiate(features: DirectSession.features,
                                                     protocolFeatures: VhostUserProtocolFeature.supportedMask & ~VhostUserProtocolFeature.status.mask,
                                                     memory: memory))
        session.process()
        for ring in 0..<2 {
            XCTAssertTrue(try session.frontend.setUpRing(ring, memory: memory, kick: try EventFD().descriptor, call: nil))
            XCTAssertTrue(try session.frontend.enableRing(ring))
        }
        XCTAssertEqual(session.delegate.queues.map(\.vringIndex), [0, 1])
    }

    /// A stopped ring belongs to the front-end again: reading its indices for the API must not
    /// write guest memory (a polling back-end's queue sets VRING_USED_F_NO_NOTIFY when built
    /// without EVENT_IDX; a view for the API must not, and such a write would go unlogged).
    func testReadingAStoppedRingsInfoWritesNoGuestMemory() throws {
        let session = try DirectSession()
        let memory = try FakeFrontendMemory()
        let kicks = [try EventFD(), try EventFD()]
        let features = DirectSession.features & ~VirtioNetFeature.eventIdx.mask
        try session.makeReady(memory: memory, kicks: kicks, features: features)
        XCTAssertEqual(memory.usedFlags(0), 1, "a polling queue asks the guest not to kick")
        XCTAssertNotNil(try session.frontend.request(.getVringBase, FakeFrontend.vringState(index: 0, num: 0)))
        memory.setUsedFlags(0, 0)
        let info = session.info
        XCTAssertEqual(info.vrings.first { $0.index == 0 }?.started, false)
        XCTAssertEqual(memory.usedFlags(0), 0, "the API's view of a stopped ring wrote used.flags")
    }

    func testFullSessionPublishesQueuesThenReady() throws {
        let session = try DirectSession()
        let memory = try FakeFrontendMemory()
        let kicks = [try EventFD(), try EventFD()]
        let call = try EventFD()
        XCTAssertEqual(session.delegate.events, [.connected])
        XCTAssertEqual(try session.frontend.request(.getFeatures)?.u64, VhostUserDevice.defaultOfferedFeatures)
        XCTAssertEqual(try session.frontend.request(.getProtocolFeatures)?.u64, VhostUserProtocolFeature.supportedMask)
        try session.frontend.send(.setProtocolFeatures, FakeFrontend.u64(VhostUserProtocolFeature.supportedMask))
        XCTAssertEqual(try session.frontend.request(.getQueueNum)?.u64, 2)
        XCTAssertEqual(try session.frontend.request(.getMaxMemSlots)?.u64, 509, "all that GuestMemory takes (QEMU's KVM limit)")
        XCTAssertEqual(try session.frontend.acked(.setFeatures, FakeFrontend.u64(DirectSession.features)), 0)
        XCTAssertEqual(try session.frontend.acked(.setOwner), 0)
        XCTAssertEqual(try session.frontend.acked(.setMemTable, FakeFrontend.memoryTable([memory.descriptor]), fds: [memory.fd]), 0)
        XCTAssertTrue(try session.frontend.setUpRing(0, memory: memory, kick: kicks[0].descriptor, call: call.descriptor))
        XCTAssertTrue(try session.frontend.setUpRing(1, memory: memory, kick: kicks[1].descriptor, call: nil))
        XCTAssertTrue(session.delegate.queues.isEmpty, "PROTOCOL_FEATURES negotiated: rings start disabled")
        XCTAssertTrue(try session.frontend.enableRing(0))
        XCTAssertTrue(session.delegate.queues.isEmpty, "the first queue pair is not complete yet")
        XCTAssertTrue(try session.frontend.enableRing(1))
        XCTAssertTrue(session.delegate.queues.isEmpty, "STATUS negotiated: nothing runs before DRIVER_OK")
        XCTAssertEqual(try session.frontend.request(.getStatus)?.u64, 0)
        XCTAssertEqual(try session.frontend.acked(.setStatus, FakeFrontend.u64(FakeFrontend.driverReadyStatus)), 0)
        let queues = session.delegate.queues
        XCTAssertEqual(queues.map(\.vringIndex), [0, 1])
        XCTAssertNotEqual(queues[0].kickDescriptor, -1)
        XCTAssertNotEqual(queues[0].queue.callDescriptor, -1)
        XCTAssertEqual(queues[1].queue.callDescriptor, -1)
        XCTAssertEqual(queues[0].queue.negotiatedFeatures, DirectSession.features)
        XCTAssertTrue(queues[1].isGuestTransmit)
        let events = session.delegate.events
        XCTAssertEqual(Array(events.suffix(2)), [.queuesChanged([0, 1]), .ready])
        XCTAssertEqual(events.filter { $0 == .ready }.count, 1)

        memory.setAvailIndex(1, 5)
        let info = session.info
        XCTAssertEqual(info.state, .ready)
        XCTAssertEqual(info.negotiatedFeatures, DirectSession.features)
        XCTAssertEqual(info.negotiatedProtocolFeatures, VhostUserProtocolFeature.supportedMask)
        XCTAssertEqual(info.memoryRegions, [memory.descriptor])
        XCTAssertEqual(info.vrings.map(\.index), [0, 1])
        XCTAssertEqual(info.vrings[1].currentAvailIndex, 5)
        XCTAssertEqual(info.vrings[1].size, 256)
        XCTAssertEqual(info.vrings[0].hasCall, true)
        XCTAssertEqual(info.vrings[0].descriptorAddress, memory.ringAddresses(0).descriptor)
        XCTAssertEqual(info.activeQueuePairs, 1)
        XCTAssertEqual(info.refusedRequests, 0)

        session.frontend.close()
        session.process()
        XCTAssertEqual(Array(session.delegate.events.suffix(2)), [.queuesChanged([]), .destroyed])
        XCTAssertNil(session.device.connection)
    }

    func testWithoutProtocolFeaturesRingsStartEnabled() throws {
        let session = try DirectSession()
        let memory = try FakeFrontendMemory()
        let features = DirectSession.features & ~VhostUserDevice.protocolFeaturesFeature
        XCTAssertTrue(try session.frontend.negotiate(features: features, memory: memory))
        for ring in 0..<2 {
            try session.frontend.send(.setVringNum, FakeFrontend.vringState(index: UInt32(ring), num: 256))
            try session.frontend.send(.setVringAddr, memory.vringAddressPayload(ring))
            try session.frontend.send(.setVringKick, FakeFrontend.vringFile(index: UInt64(ring), noFd: true))
        }
        session.process()
        XCTAssertEqual(session.delegate.queues.map(\.vringIndex), [0, 1])
        XCTAssertEqual(session.delegate.queues[0].kickDescriptor, -1)
        XCTAssertEqual(session.delegate.count(.ready), 1)
    }

    func testDisabledRingsAreNotPublished() throws {
        let session = try DirectSession()
        let memory = try FakeFrontendMemory()
        try session.makeReady(memory: memory, kicks: [try EventFD(), try EventFD()])
        for ring in 2..<4 { XCTAssertTrue(try session.frontend.setUpRing(ring, memory: memory, kick: nil, call: nil)) }
        XCTAssertEqual(session.delegate.queues.map(\.vringIndex), [0, 1], "rings 2 and 3 are not enabled")
        XCTAssertTrue(try session.frontend.enableRing(2))
        XCTAssertTrue(try session.frontend.enableRing(3))
        XCTAssertEqual(session.delegate.queues.map(\.vringIndex), [0, 1, 2, 3])
        XCTAssertTrue(try session.frontend.enableRing(2, false))
        XCTAssertEqual(session.delegate.queues.map(\.vringIndex), [0, 1, 3])
        XCTAssertEqual(session.delegate.count(.ready), 1)
        XCTAssertEqual(session.delegate.count(.vringState(2, false)), 1)
    }

    func testGetVringBaseStopsRingAndReportsRingsStoppedOnce() throws {
        let session = try DirectSession()
        let memory = try FakeFrontendMemory()
        // A front-end's bases agree with the used indices in its memory.
        memory.setUsedIndex(0, 9)
        memory.setUsedIndex(1, 4)
        try session.makeReady(memory: memory, kicks: [try EventFD(), try EventFD()], bases: [9, 4])
        let reply0 = try session.frontend.request(.getVringBase, FakeFrontend.vringState(index: 0, num: 0))
        XCTAssertEqual(reply0?.payload, FakeFrontend.vringState(index: 0, num: 9))
        XCTAssertTrue(session.delegate.queues.isEmpty, "a stopped ring withdraws the device's queues")
        let reply1 = try session.frontend.request(.getVringBase, FakeFrontend.vringState(index: 1, num: 0))
        XCTAssertEqual(reply1?.payload, FakeFrontend.vringState(index: 1, num: 4))
        XCTAssertEqual(session.delegate.count(.migration(.ringsStopped)), 1)
        XCTAssertEqual(session.info.vrings.map(\.started), [false, false])
        // Restart from the returned bases: published again, and a later stop is reported again.
        for ring in 0..<2 {
            XCTAssertEqual(try session.frontend.acked(.setVringBase, FakeFrontend.vringState(index: UInt32(ring), num: [9, 4][ring])), 0)
            XCTAssertEqual(try session.frontend.acked(.setVringKick, FakeFrontend.vringFile(index: UInt64(ring), noFd: true)), 0)
        }
        XCTAssertEqual(session.delegate.queues.map { $0.queue.lastAvailIndex }, [9, 4])
        _ = try session.frontend.request(.getVringBase, FakeFrontend.vringState(index: 0, num: 0))
        XCTAssertEqual(session.delegate.count(.migration(.ringsStopped)), 2)
    }

    func testMigrationSequenceLogsAndAnnounces() throws {
        let session = try DirectSession()
        let memory = try FakeFrontendMemory()
        try session.makeReady(memory: memory, kicks: [try EventFD(), try EventFD()])
        let log = try MemFD.create(name: "log", size: 4096)
        XCTAssertEqual(try session.frontend.request(.setLogBase, FakeFrontend.logBase(size: 4096, offset: 0), fds: [log])?.payload, [])
        XCTAssertEqual(try session.frontend.acked(.setFeatures, FakeFrontend.u64(DirectSession.features | VhostUserDevice.logAllFeature)), 0)
        XCTAssertEqual(try session.frontend.acked(.setVringAddr, memory.vringAddressPayload(0, flags: 1, log: 0x2000)), 0)
        XCTAssertTrue(session.info.dirtyLogging)
        let queues = session.delegate.queues
        XCTAssertEqual(queues.map(\.vringIndex), [0, 1])
        XCTAssertNotNil(queues[0].queue.dirtyLog)
        XCTAssertTrue(queues[0].queue.logsUsedRing)
        XCTAssertFalse(queues[1].queue.logsUsedRing)
        XCTAssertEqual(session.delegate.count(.migration(.loggingStarted)), 1)
        XCTAssertEqual(try session.frontend.acked(.sendRarp, [2, 0, 0, 0, 0, 7, 0, 0]), 0)
        XCTAssertEqual(session.delegate.count(.announce([2, 0, 0, 0, 0, 7])), 1)
    }

    func testProtocolFeaturesRequireBit30Offered() throws {
        let session = try DirectSession(offered: DirectSession.features & ~VhostUserDevice.protocolFeaturesFeature)
        try session.frontend.send(.getProtocolFeatures)
        XCTAssertTrue(session.frontend.waitForClose())
        XCTAssertEqual(session.connection.closeReason, .invalidPayload(.getProtocolFeatures, "PROTOCOL_FEATURES (bit 30) was not offered"))
    }

    func testRequestNeedingUnnegotiatedProtocolFeatureIsRefused() throws {
        let session = try DirectSession()
        XCTAssertTrue(try session.frontend.negotiate(features: DirectSession.features,
                                                     protocolFeatures: VhostUserProtocolFeature.replyAck.mask, memory: nil))
        XCTAssertEqual(try session.frontend.acked(.setStatus, FakeFrontend.u64(1)), 1)
        XCTAssertEqual(try session.frontend.acked(.resetDevice), 1)
        XCTAssertEqual(try session.frontend.acked(.netSetMtu, FakeFrontend.u64(1500)), 1)
        XCTAssertEqual(try session.frontend.acked(.sendRarp, [0x02, 0, 0, 0, 0, 0x42, 0, 0]), 1, "RARP not negotiated")
        XCTAssertEqual(session.device.refusedRequestCount, 4)
        XCTAssertEqual(session.delegate.count(.announce([0x02, 0, 0, 0, 0, 0x42])), 0)
    }

    func testOfferedFeaturesAreCapturedWhenTheSessionStarts() throws {
        let session = try DirectSession()
        try session.device.setOfferedFeatures(VhostUserDevice.defaultOfferedFeatures & ~VirtioNetFeature.mrgRxbuf.mask)
        XCTAssertEqual(try session.frontend.request(.getFeatures)?.u64, VhostUserDevice.defaultOfferedFeatures)
        XCTAssertEqual(session.device.offeredFeatures, VhostUserDevice.defaultOfferedFeatures & ~(1 << 15))
        XCTAssertThrowsError(try session.device.setOfferedFeatures(session.device.offeredFeatures | VirtioNetFeature.ctrlRx.mask),
                             "CTRL_RX is not supported")
        XCTAssertThrowsError(try session.device.setOfferedFeatures(1 << 62))
        XCTAssertEqual(session.device.offeredFeatures, VhostUserDevice.defaultOfferedFeatures & ~(1 << 15))
    }

    func testResetDeviceWithdrawsAndDestroys() throws {
        let session = try DirectSession()
        let memory = try FakeFrontendMemory()
        let kicks = [try EventFD(), try EventFD()]
        try session.makeReady(memory: memory, kicks: kicks)
        session.delegate.clear()
        XCTAssertEqual(try session.frontend.acked(.resetDevice), 0)
        XCTAssertEqual(session.delegate.events, [.queuesChanged([]), .destroyed])
        XCTAssertTrue(session.info.memoryRegions.isEmpty)
        XCTAssertNil(session.info.negotiatedFeatures)
        XCTAssertEqual(session.info.negotiatedProtocolFeatures, VhostUserProtocolFeature.supportedMask)
        XCTAssertFalse(session.connection.isClosed)
        // The session can be set up again.
        try session.makeReady(memory: memory, kicks: kicks)
        XCTAssertEqual(session.delegate.queues.map(\.vringIndex), [0, 1])
    }

    func testAddAndRemoveMemoryRegion() throws {
        let session = try DirectSession()
        let a = try FakeFrontendMemory()
        let b = try FakeFrontendMemory(guestPhysicalAddress: 1 << 30, userspaceAddress: 0x7e00_0000_0000)
        try session.makeReady(memory: a, kicks: [try EventFD(), try EventFD()])
        XCTAssertEqual(try session.frontend.acked(.addMemReg, FakeFrontend.singleRegion(b.descriptor), fds: [b.fd]), 0)
        XCTAssertEqual(session.info.memoryRegions, [a.descriptor, b.descriptor])
        XCTAssertEqual(try session.frontend.acked(.addMemReg, FakeFrontend.singleRegion(b.descriptor), fds: [b.fd]), 1, "overlap")
        XCTAssertEqual(try session.frontend.acked(.remMemReg, FakeFrontend.singleRegion(b.descriptor)), 0)
        XCTAssertEqual(try session.frontend.acked(.remMemReg, FakeFrontend.singleRegion(b.descriptor)), 1, "already removed")
        XCTAssertEqual(session.info.memoryRegions, [a.descriptor])
        XCTAssertEqual(session.delegate.queues.map(\.vringIndex), [0, 1])
        // Removing the region the rings live in: they are not published any more.
        XCTAssertEqual(try session.frontend.acked(.remMemReg, FakeFrontend.singleRegion(a.descriptor)), 0)
        XCTAssertTrue(session.delegate.queues.isEmpty)
        XCTAssertEqual(session.info.state, .connected)
    }

    /// 509 regions (one from SET_MEM_TABLE, 508 added) is the limit GET_MAX_MEM_SLOTS
    /// reports: the 510th is refused and the session goes on, every fd an ADD carried is
    /// closed, and the session's guard slots go when it ends.
    func testFiveHundredNineMemorySlotsThenARefusal() throws {
        let slotsBefore = GuestMemoryGuard.registeredSlots
        let regions = try FakeHotplugRegions()
        try assertNoFdLeak {
            let session = try DirectSession()
            let a = try FakeFrontendMemory()
            try session.makeReady(memory: a, kicks: [try EventFD(), try EventFD()])
            for i in 0..<508 {
                XCTAssertEqual(try session.frontend.acked(.addMemReg, regions.payload(i), fds: [regions.fd]), 0, "region \(i)")
            }
            XCTAssertEqual(session.info.memoryRegions.count, 509)
            XCTAssertEqual(try session.frontend.acked(.addMemReg, regions.payload(508), fds: [regions.fd]), 1, "the 510th")
            XCTAssertFalse(session.connection.isClosed)
            XCTAssertEqual(session.info.memoryRegions.count, 509)
            XCTAssertTrue(session.info.lastError?.contains("509 memory slots") == true, "\(session.info.lastError ?? "")")
            XCTAssertEqual(session.delegate.queues.map(\.vringIndex), [0, 1], "the rings run on")
            // A slot freed is a slot to use again.
            XCTAssertEqual(try session.frontend.acked(.remMemReg, regions.payload(100)), 0)
            XCTAssertEqual(try session.frontend.acked(.addMemReg, regions.payload(508), fds: [regions.fd]), 0)
            XCTAssertEqual(GuestMemoryGuard.registeredSlots, slotsBefore + 509, "one guard slot per region")
            session.frontend.close()
            session.process()
            XCTAssertTrue(session.connection.isClosed)
        }
        XCTAssertEqual(GuestMemoryGuard.registeredSlots, slotsBefore, "every guard slot released")
    }

    /// The per-session cap on mapped guest memory (1 TiB) counts the added regions with the
    /// table's: the ADD that would pass it is refused before it is mapped, the session keeps
    /// what it had.
    func testAddedRegionsCountTowardsTheMappedMemoryCap() throws {
        let session = try DirectSession()
        try session.makeReady(memory: try FakeFrontendMemory(), kicks: [try EventFD(), try EventFD()])
        let fd = try MemFD.create(name: "cap", size: Int(Self.capTestRegionSize))
        let region = { (n: UInt64) in FakeFrontend.singleRegion(Self.capTestRegion(n)) }
        let sizeBefore = VirtualMemory.current()
        XCTAssertEqual(try session.frontend.acked(.addMemReg, region(1), fds: [fd]), 0)
        XCTAssertEqual(try session.frontend.acked(.addMemReg, region(2), fds: [fd]), 1, "1.2 TiB in all")
        XCTAssertTrue(session.info.lastError?.contains("per session") == true, "\(session.info.lastError ?? "")")
        assertRefusedRegionWasNeverMapped(since: sizeBefore)
        XCTAssertEqual(session.info.memoryRegions.count, 2)
        XCTAssertFalse(session.connection.isClosed)
        XCTAssertEqual(session.delegate.queues.map(\.vringIndex), [0, 1], "the rings run on")
    }

    /// A SET_MEM_TABLE whose regions together pass the cap is refused region by region before
    /// mmap: the second 600 GiB region is never mapped (it was, and then unmapped, before).
    func testMemoryTablePastTheMappedMemoryCapIsRefusedBeforeMapping() throws {
        let session = try DirectSession()
        try session.negotiate(memory: nil)
        let fd = try MemFD.create(name: "cap-table", size: Int(Self.capTestRegionSize))
        let sizeBefore = VirtualMemory.current()
        XCTAssertEqual(try session.frontend.acked(.setMemTable, FakeFrontend.memoryTable([Self.capTestRegion(1), Self.capTestRegion(2)]),
                                                  fds: [fd, fd]), 1, "1.2 TiB in all")
        XCTAssertTrue(session.info.lastError?.contains("per session") == true, "\(session.info.lastError ?? "")")
        XCTAssertFalse(session.connection.isClosed)
        XCTAssertTrue(session.info.memoryRegions.isEmpty, "nothing installed")
        assertRefusedRegionWasNeverMapped(since: sizeBefore)
        let one = FakeFrontend.memoryTable([Self.capTestRegion(1)])
        XCTAssertEqual(try session.frontend.acked(.setMemTable, one, fds: [fd]), 0, "one region fits")
    }

    /// 600 GiB, sparse: nothing is touched. Two pass the 1 TiB cap; one alone is far below it.
    private static let capTestRegionSize: UInt64 = 600 << 30

    private static func capTestRegion(_ n: UInt64) -> GuestMemoryRegionDescriptor {
        GuestMemoryRegionDescriptor(guestPhysicalAddress: n << 40, size: capTestRegionSize,
                                    userspaceAddress: 0x1000_0000_0000 * n, mmapOffset: 0)
    }

    /// The process's peak address space (VmPeak) grew by one 600 GiB region at most, not
    /// two: the refused one was never mapped. No test maps more than 1 TiB plus a little, so
    /// an earlier test's peak does not reach 900 GiB above this one's start.
    private func assertRefusedRegionWasNeverMapped(since before: VirtualMemory, file: StaticString = #filePath, line: UInt = #line) {
        let grown = VirtualMemory.current().peakBytes - before.sizeBytes
        XCTAssertLessThan(grown, 900 << 30, "VmPeak grew \(grown >> 30) GiB: the refused region was mapped", file: file, line: line)
    }

    /// The process-wide SIGBUS guard registry full (lowered here; 65,536 slots in the
    /// daemon): the mapping past it is refused as this one request, the session keeps its
    /// table and its rings, and the slot is there again once a region goes.
    func testFullGuardRegistryRefusesOnlyTheMappingPastIt() throws {
        let regions = try FakeHotplugRegions(count: 4)
        let session = try DirectSession()
        try session.makeReady(memory: try FakeFrontendMemory(), kicks: [try EventFD(), try EventFD()])
        let limit = GuestMemoryGuard.slotLimit
        defer { GuestMemoryGuard.slotLimit = limit }
        GuestMemoryGuard.slotLimit = GuestMemoryGuard.registeredSlots + 2
        XCTAssertEqual(try session.frontend.acked(.addMemReg, regions.payload(0), fds: [regions.fd]), 0)
        XCTAssertEqual(try session.frontend.acked(.addMemReg, regions.payload(1), fds: [regions.fd]), 0)
        XCTAssertEqual(try session.frontend.acked(.addMemReg, regions.payload(2), fds: [regions.fd]), 1, "no guard slot left")
        XCTAssertTrue(session.info.lastError?.contains("guarded guest mappings of the process in use") == true, "\(session.info.lastError ?? "")")
        XCTAssertFalse(session.connection.isClosed)
        XCTAssertEqual(session.info.memoryRegions.count, 3)
        XCTAssertEqual(session.delegate.queues.map(\.vringIndex), [0, 1], "the rings run on")
        XCTAssertEqual(try session.frontend.acked(.remMemReg, regions.payload(0)), 0)
        XCTAssertEqual(try session.frontend.acked(.addMemReg, regions.payload(2), fds: [regions.fd]), 0)
        XCTAssertEqual(session.info.memoryRegions.map(\.guestPhysicalAddress).suffix(2),
                       [regions.descriptor(1).guestPhysicalAddress, regions.descriptor(2).guestPhysicalAddress])
    }

    // MARK: Misbehaving front-ends

    func testDisconnectMidMessageEndsOnlyThatSession() throws {
        let session = try DirectSession()
        try session.frontend.sendRaw(FakeFrontend.header(VhostUserRequest.setFeatures.rawValue, size: 8) + [1, 2, 3])
        session.process()
        XCTAssertFalse(session.connection.isClosed)
        session.frontend.close()
        session.process()
        XCTAssertEqual(session.connection.closeReason, .disconnectedMidMessage(received: 3, expected: 8))
        XCTAssertEqual(session.delegate.events.last, .destroyed)
    }

    func testFrontendThatNeverReadsRepliesIsDisconnected() throws {
        let session = try DirectSession()
        session.frontend.pump = nil
        let request = FakeFrontend.header(VhostUserRequest.getFeatures.rawValue, size: 0)
        var sent = 0
        while !session.connection.isClosed && sent < 200_000 {
            try session.frontend.sendRaw(request)
            sent += 1
            if sent % 64 == 0 { session.process() }
        }
        session.process()
        XCTAssertTrue(session.connection.isClosed, "sent \(sent) requests without reading a reply")
        XCTAssertEqual(session.connection.closeReason, .replyWouldBlock)
    }

    func testBadSessionRepeated1000TimesDoesNotLeakFds() throws {
        let delegate = RecordingDeviceDelegate()
        let device = try VhostUserDevice(configuration: VhostUserDeviceConfiguration(name: "leak", socketPath: "/nonexistent"), delegate: delegate)
        let memory = try FakeFrontendMemory(size: 1 << 16)
        let pipeLike = try EventFD()
        func badSession(_ round: Int) throws {
            let (frontend, backend) = try FakeFrontend.pair()
            let connection = VhostUserConnection(device: device, socket: backend)
            frontend.pump = { _ = connection.handleReadable() }
            _ = try frontend.request(.getFeatures)
            try frontend.send(.setOwner, fds: [pipeLike.descriptor])
            try frontend.send(.setMemTable, FakeFrontend.memoryTable([memory.descriptor]), fds: [memory.fd])
            try frontend.send(.setVringCall, FakeFrontend.vringFile(index: 0), fds: [pipeLike.descriptor])
            try frontend.send(.setVringNum, FakeFrontend.vringState(index: 0, num: 3))
            try frontend.send(.setMemTable, FakeFrontend.memoryTable([memory.descriptor, memory.descriptor]), fds: [memory.fd])
            // Each round ends differently: mid-message, bad header, or a plain close.
            switch round % 3 {
            case 0: try frontend.sendRaw(FakeFrontend.header(VhostUserRequest.setFeatures.rawValue, size: 8) + [1])
            case 1: try frontend.sendRaw(FakeFrontend.header(0, flags: 3, size: 0))
            default: break
            }
            connection.handleReadable()
            frontend.close()
            connection.handleReadable()
            XCTAssertTrue(connection.isClosed)
        }
        try badSession(0)
        let before = FileDescriptor.openCount()
        for round in 1...1000 { try badSession(round) }
        XCTAssertEqual(FileDescriptor.openCount(), before)
        XCTAssertEqual(device.info().sessions, 1001)
        XCTAssertNil(device.connection)
    }
}

/// /proc/self/status VmSize and VmPeak (the largest VmSize so far).
private struct VirtualMemory {
    var sizeBytes: UInt64
    var peakBytes: UInt64

    static func current() -> VirtualMemory {
        let text = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
        func kibibytes(_ key: String) -> UInt64 {
            let line = text.split(separator: "\n").first { $0.hasPrefix(key + ":") } ?? ""
            let fields = line.split { $0 == " " || $0 == "\t" }
            return fields.count > 1 ? UInt64(fields[1]) ?? 0 : 0
        }
        return VirtualMemory(sizeBytes: kibibytes("VmSize") << 10, peakBytes: kibibytes("VmPeak") << 10)
    }
}
