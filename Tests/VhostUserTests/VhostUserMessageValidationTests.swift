import TestSupport
import VhostSystem
import VhostUser
import Virtio
import XCTest

/// UNTRUSTED-INPUT.md "vhost-user messages": headers, request codes, fds and vring indices.
final class VhostUserMessageValidationTests: XCTestCase {
    // MARK: Header

    func testShortHeaderClosesSession() throws {
        let session = try DirectSession()
        try session.frontend.sendRaw([1, 0, 0, 0, 1, 0])
        session.process()
        XCTAssertFalse(session.connection.isClosed, "half a header waits for the rest")
        session.frontend.close()
        session.process()
        XCTAssertTrue(session.connection.isClosed)
        XCTAssertEqual(session.connection.closeReason, .shortHeader(received: 6))
        XCTAssertEqual(session.delegate.events.last, .destroyed)
    }

    func testSizeLargerThanLargestPayloadIsRefused() throws {
        let session = try DirectSession()
        try session.frontend.sendRaw(FakeFrontend.header(VhostUserRequest.setFeatures.rawValue, size: VhostUserHeader.maxPayloadSize + 1))
        XCTAssertTrue(session.frontend.waitForClose())
        XCTAssertEqual(session.connection.closeReason, .payloadTooLarge(UInt32(VhostUserHeader.maxPayloadSize + 1)))
        XCTAssertEqual(session.info.sessionsClosedOnError, 1)
    }

    func testSizeNotEqualToFixedSizeIsRefused() throws {
        let session = try DirectSession()
        try session.negotiate(memory: nil)
        let refusedBefore = session.device.refusedRequestCount
        XCTAssertEqual(try session.frontend.acked(.setFeatures, [0, 0, 0, 1]), 1)
        XCTAssertEqual(try session.frontend.acked(.setVringNum, FakeFrontend.vringState(index: 0, num: 256) + [0]), 1)
        XCTAssertEqual(session.device.refusedRequestCount, refusedBefore + 2)
        XCTAssertFalse(session.connection.isClosed)
        XCTAssertNil(session.info.vrings.first { $0.index == 0 }?.size)
    }

    func testWrongPayloadSizeOnGetRequestClosesSession() throws {
        let session = try DirectSession()
        try session.frontend.send(.getFeatures, [0, 0, 0, 0, 0, 0, 0, 0])
        XCTAssertTrue(session.frontend.waitForClose(), "a GET that cannot be answered ends the session")
        XCTAssertEqual(session.connection.closeReason, .wrongPayloadSize(.getFeatures, size: 8, expected: "0"))
    }

    func testVersionNotOneIsRefused() throws {
        let session = try DirectSession()
        try session.frontend.sendRaw(FakeFrontend.header(VhostUserRequest.getFeatures.rawValue, flags: 2, size: 0))
        XCTAssertTrue(session.frontend.waitForClose())
        XCTAssertEqual(session.connection.closeReason, .badVersion(2))
    }

    func testReplyBitOnRequestIsRefused() throws {
        let session = try DirectSession()
        try session.frontend.sendRaw(FakeFrontend.header(VhostUserRequest.getFeatures.rawValue,
                                                         flags: VhostUserHeader.version | VhostUserHeader.replyFlag, size: 0))
        XCTAssertTrue(session.frontend.waitForClose())
        XCTAssertEqual(session.connection.closeReason, .replyFlagOnRequest)
    }

    func testRequestCodeZeroIsRefused() throws {
        let session = try DirectSession()
        try session.negotiate(memory: nil)
        try session.frontend.sendCode(0, needReply: true)
        XCTAssertEqual(session.frontend.readReply()?.u64, 1)
        XCTAssertEqual(session.device.refusedRequestCount, 1)
        XCTAssertFalse(session.connection.isClosed)
    }

    func testUnknownRequestCodeIsRefused() throws {
        let session = try DirectSession()
        try session.negotiate(memory: nil)
        try session.frontend.sendCode(35, FakeFrontend.u64(0), needReply: true)  // VRING_KICK: known, not supported
        XCTAssertEqual(session.frontend.readReply()?.u64, 1)
        try session.frontend.sendCode(0x7fff_0000, [1, 2, 3], needReply: true)
        XCTAssertEqual(session.frontend.readReply()?.u64, 1)
        XCTAssertEqual(session.device.refusedRequestCount, 2)
        // The session still works: the payload of the unknown request was skipped.
        XCTAssertEqual(try session.frontend.request(.getFeatures)?.u64, VhostUserDevice.defaultOfferedFeatures)
    }

    func testRequestCodeAboveHighestKnownIsRefused() throws {
        let session = try DirectSession()
        try session.negotiate(memory: nil)
        let highest = VhostUserRequest.allCases.map(\.rawValue).max()!
        XCTAssertNil(VhostUserRequest(rawValue: highest + 1))
        try session.frontend.sendCode(highest + 1, needReply: true)
        XCTAssertEqual(session.frontend.readReply()?.u64, 1)
        XCTAssertEqual(session.device.refusedRequestCount, 1)
    }

    func testMessageSplitIntoSingleBytesIsAssembled() throws {
        let session = try DirectSession()
        let bytes = FakeFrontend.header(VhostUserRequest.getFeatures.rawValue, size: 0)
        for byte in bytes {
            try session.frontend.sendRaw([byte])
            session.process()
        }
        XCTAssertEqual(session.frontend.readReply()?.u64, VhostUserDevice.defaultOfferedFeatures)
    }

    // MARK: File descriptors

    func testFdsOnRequestWithoutFdsAreClosed() throws {
        let session = try DirectSession()
        try session.negotiate(memory: nil)
        let a = try EventFD(), b = try EventFD()
        try assertNoFdLeak {
            XCTAssertEqual(try session.frontend.acked(.setOwner, fds: [a.descriptor, b.descriptor]), 1)
            XCTAssertEqual(try session.frontend.acked(.setFeatures, FakeFrontend.u64(DirectSession.features), fds: [a.descriptor]), 1)
        }
        XCTAssertEqual(session.device.refusedRequestCount, 2)
    }

    func testMoreThanEightFdsRefused() throws {
        let session = try DirectSession()
        try session.negotiate(memory: nil)
        let memories = try (0..<9).map { _ in try FakeFrontendMemory(size: 1 << 16) }
        let regions = (0..<8).map { i in
            GuestMemoryRegionDescriptor(guestPhysicalAddress: UInt64(i) << 20, size: 1 << 16, userspaceAddress: 0x10_0000_0000 + (UInt64(i) << 20), mmapOffset: 0)
        }
        let payload = FakeFrontend.memoryTable(regions)
        let bytes = FakeFrontend.header(VhostUserRequest.setMemTable.rawValue, flags: VhostUserHeader.version | VhostUserHeader.needReplyFlag, size: payload.count) + payload
        try assertNoFdLeak {
            // Eight fds with the header, a ninth with the rest of the payload.
            try session.frontend.sendRaw(Array(bytes[0..<20]), fds: memories[0..<8].map(\.fd))
            try session.frontend.sendRaw(Array(bytes[20...]), fds: [memories[8].fd])
            XCTAssertEqual(session.frontend.readReply()?.u64, 1)
        }
        XCTAssertEqual(session.device.refusedRequestCount, 1)
        XCTAssertTrue(session.info.memoryRegions.isEmpty)
    }

    func testMissingFdOnKickIsRefused() throws {
        let session = try DirectSession()
        let memory = try FakeFrontendMemory()
        try session.negotiate(memory: memory)
        XCTAssertEqual(try session.frontend.acked(.setVringNum, FakeFrontend.vringState(index: 0, num: 256)), 0)
        XCTAssertEqual(try session.frontend.acked(.setVringAddr, memory.vringAddressPayload(0)), 0)
        XCTAssertEqual(try session.frontend.acked(.setVringKick, FakeFrontend.vringFile(index: 0)), 1)
        XCTAssertEqual(session.info.vrings.first { $0.index == 0 }?.started, false)
    }

    func testMissingFdOnMemTableIsRefused() throws {
        let session = try DirectSession()
        let memory = try FakeFrontendMemory()
        try session.negotiate(memory: nil)
        XCTAssertEqual(try session.frontend.acked(.setMemTable, FakeFrontend.memoryTable([memory.descriptor])), 1)
        XCTAssertTrue(session.info.memoryRegions.isEmpty)
    }

    func testMissingFdOnLogBaseIsRefused() throws {
        let session = try DirectSession()
        try session.negotiate(memory: try FakeFrontendMemory())
        // LOG_SHMFD negotiated: SET_LOG_BASE always replies, so a refusal ends the session.
        try session.frontend.send(.setLogBase, FakeFrontend.logBase(size: 4096, offset: 0))
        XCTAssertTrue(session.frontend.waitForClose())
        XCTAssertEqual(session.connection.closeReason, .missingDescriptor(.setLogBase))
    }

    func testNofdBitWithFdIsRefused() throws {
        let session = try DirectSession()
        let memory = try FakeFrontendMemory()
        try session.negotiate(memory: memory)
        let call = try EventFD()
        try assertNoFdLeak {
            XCTAssertEqual(try session.frontend.acked(.setVringCall, FakeFrontend.vringFile(index: 0, noFd: true), fds: [call.descriptor]), 1)
        }
        XCTAssertEqual(session.info.vrings.first { $0.index == 0 }?.hasCall ?? false, false)
    }

    func testMemTableFdCountMismatchIsRefused() throws {
        let session = try DirectSession()
        try session.negotiate(memory: nil)
        let a = try FakeFrontendMemory(), b = try FakeFrontendMemory(guestPhysicalAddress: 1 << 30, userspaceAddress: 0x7e00_0000_0000)
        try assertNoFdLeak {
            XCTAssertEqual(try session.frontend.acked(.setMemTable, FakeFrontend.memoryTable([a.descriptor, b.descriptor]), fds: [a.fd]), 1)
            XCTAssertEqual(try session.frontend.acked(.setMemTable, FakeFrontend.memoryTable([a.descriptor]), fds: [a.fd, b.fd]), 1)
        }
        XCTAssertTrue(session.info.memoryRegions.isEmpty)
    }

    // MARK: Vring index at the maximum (2 * maxQueuePairs)

    private func assertIndexRefused(_ request: VhostUserRequest, payload: (UInt32) -> [UInt8], fd: Bool = false,
                                    file: StaticString = #filePath, line: UInt = #line) throws {
        let session = try DirectSession(maxQueuePairs: 2)
        let memory = try FakeFrontendMemory()
        try session.negotiate(memory: memory)
        let event = try EventFD()
        try assertNoFdLeak {
            XCTAssertEqual(try session.frontend.acked(request, payload(4), fds: fd ? [event.descriptor] : []), 1, file: file, line: line)
            XCTAssertEqual(try session.frontend.acked(request, payload(255), fds: fd ? [event.descriptor] : []), 1, file: file, line: line)
        }
        XCTAssertEqual(session.device.refusedRequestCount, 2, file: file, line: line)
        XCTAssertTrue(session.info.vrings.isEmpty, file: file, line: line)
    }

    func testVringIndexAtMaximumRefusedForNum() throws {
        try assertIndexRefused(.setVringNum) { FakeFrontend.vringState(index: $0, num: 256) }
    }

    func testVringIndexAtMaximumRefusedForAddr() throws {
        let memory = try FakeFrontendMemory()
        try assertIndexRefused(.setVringAddr) { memory.vringAddressPayload(0).replacingIndex($0) }
    }

    func testVringIndexAtMaximumRefusedForBase() throws {
        try assertIndexRefused(.setVringBase) { FakeFrontend.vringState(index: $0, num: 0) }
    }

    func testVringIndexAtMaximumRefusedForGetBase() throws {
        let session = try DirectSession(maxQueuePairs: 2)
        try session.negotiate(memory: nil)
        try session.frontend.send(.getVringBase, FakeFrontend.vringState(index: 4, num: 0))
        XCTAssertTrue(session.frontend.waitForClose(), "GET_VRING_BASE cannot be answered: the session ends")
        XCTAssertEqual(session.connection.closeReason, .vringIndexOutOfRange(.getVringBase, index: 4, count: 4))
    }

    func testVringIndexAtMaximumRefusedForKick() throws {
        try assertIndexRefused(.setVringKick, payload: { FakeFrontend.vringFile(index: UInt64($0)) }, fd: true)
    }

    func testVringIndexAtMaximumRefusedForCall() throws {
        try assertIndexRefused(.setVringCall, payload: { FakeFrontend.vringFile(index: UInt64($0)) }, fd: true)
    }

    func testVringIndexAtMaximumRefusedForErr() throws {
        try assertIndexRefused(.setVringErr, payload: { FakeFrontend.vringFile(index: UInt64($0)) }, fd: true)
    }

    func testVringIndexAtMaximumRefusedForEnable() throws {
        try assertIndexRefused(.setVringEnable) { FakeFrontend.vringState(index: $0, num: 1) }
    }

    func testUpperBitsInIndexWordRefused() throws {
        let session = try DirectSession()
        let memory = try FakeFrontendMemory()
        try session.negotiate(memory: memory)
        let call = try EventFD()
        try assertNoFdLeak {
            // Index 0 in bits 0-7, junk above bit 8: not "ring 0".
            XCTAssertEqual(try session.frontend.acked(.setVringCall, FakeFrontend.u64(1 << 32), fds: [call.descriptor]), 1)
            XCTAssertEqual(try session.frontend.acked(.setVringErr, FakeFrontend.u64(0x200), fds: [call.descriptor]), 1)
            XCTAssertEqual(try session.frontend.acked(.setVringKick, FakeFrontend.u64(1 << 63 | 1 << 8)), 1)
            // vring_state index word: a u32 with high bits set is out of range, not truncated.
            XCTAssertEqual(try session.frontend.acked(.setVringNum, FakeFrontend.vringState(index: 0x1_0000, num: 256)), 1)
        }
        XCTAssertTrue(session.info.vrings.isEmpty)
        XCTAssertEqual(session.device.refusedRequestCount, 4)
    }
}

extension Array where Element == UInt8 {
    /// Replaces the u32 vring index at the start of a vring_state / vring_addr payload.
    func replacingIndex(_ index: UInt32) -> [UInt8] {
        var copy = self
        var writer = LittleEndianWriter()
        writer.u32(index)
        copy.replaceSubrange(0..<4, with: writer.bytes)
        return copy
    }
}
