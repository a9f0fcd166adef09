import TestSupport
import VhostSystem
@testable import VhostUser
import Virtio
import XCTest

/// The request table and the payload types it names: one row per request, a size rule that
/// matches what each payload type reads, and values checked by the types themselves.
final class VhostUserRequestTableTests: XCTestCase {
    private func decoder(_ request: VhostUserRequest, _ payload: [UInt8], fds: [FileDescriptor] = [],
                         vringCount: Int = 4) -> VhostUserPayloadDecoder {
        VhostUserPayloadDecoder(VhostUserMessage(header: VhostUserHeader(request: request.rawValue, flags: 1, size: UInt32(payload.count)),
                                                 payload: payload, descriptors: fds),
                                request: request, vringCount: vringCount)
    }

    private func decodeError<P: VhostUserPayload>(_ type: P.Type, _ request: VhostUserRequest, _ payload: [UInt8],
                                                  fds: [FileDescriptor] = []) -> VhostUserProtocolError? {
        var decoder = decoder(request, payload, fds: fds)
        do {
            _ = try P(decoding: &decoder)
            return nil
        } catch {
            return error
        }
    }

    func testEveryRequestHasOneRowAndTheRestAreUnsupported() {
        let rows = VhostUserRequestTable.handlers.map(\.request)
        XCTAssertEqual(Set(rows).count, rows.count, "one row per request")
        for request in VhostUserRequest.allCases {
            let rule = VhostUserMessageRule.rule(for: request)
            XCTAssertEqual(rule.supported, rows.contains(request), "\(request)")
            if !rule.supported {
                XCTAssertEqual(rule.descriptors, .anyUnused, "\(request): fds closed, payload skipped")
                XCTAssertEqual(rule.payload, .variable(0...VhostUserHeader.maxPayloadSize), "\(request)")
            }
            if rule.changesRings { XCTAssertTrue(rule.budgeted, "\(request): every ring change is budgeted") }
        }
        XCTAssertEqual(rows.count, 26)
        XCTAssertTrue(VhostUserMessageRule.rule(for: .sendRarp).budgeted)
        XCTAssertEqual(VhostUserMessageRule.rule(for: .setVringAddr).requiredState, .memoryMapped)
    }

    /// Every row's payload type reads no more than its size rule lets through: a payload of
    /// the smallest and the largest accepted size never fails as too short.
    func testEveryPayloadTypeReadsWithinItsSizeRule() throws {
        let fds = try (0..<8).map { _ in try EventFD().descriptor }
        for handler in VhostUserRequestTable.handlers {
            let sizes: [Int]
            switch handler.rule.payload {
            case .exact(let size): sizes = [size]
            case .variable(let range): sizes = [range.lowerBound, range.upperBound]
            }
            for size in sizes {
                for fdCount in [0, 1, 8] {
                    var message = VhostUserMessage(header: VhostUserHeader(request: handler.request.rawValue, flags: 1, size: UInt32(size)),
                                                   payload: [UInt8](repeating: 0, count: size), descriptors: Array(fds.prefix(fdCount)))
                    do {
                        _ = try handler.decode(&message, 4)
                    } catch {
                        if case .wrongPayloadSize = error { XCTFail("\(handler.request), \(size) bytes: \(error)") }
                    }
                }
            }
        }
    }

    func testAShortPayloadIsAnErrorNotAZero() {
        // Past the dispatcher's size check this cannot happen; the decoder still never reads 0.
        XCTAssertEqual(decodeError(VringAddress.self, .setVringAddr, [UInt8](repeating: 0, count: 39)),
                       .wrongPayloadSize(.setVringAddr, size: 39, expected: "at least 40"))
        XCTAssertEqual(decodeError(VringState.self, .setVringNum, [0, 0, 0, 0]),
                       .wrongPayloadSize(.setVringNum, size: 4, expected: "at least 8"))
    }

    func testVringFileTakesItsFdAndChecksNoFdAndIndex() throws {
        let event = try EventFD()
        var withFd = decoder(.setVringCall, FakeFrontend.vringFile(index: 3), fds: [event.descriptor])
        let file = try VringFile(decoding: &withFd)
        XCTAssertEqual(file.index, 3)
        XCTAssertTrue(file.descriptor === event.descriptor)
        XCTAssertTrue(withFd.descriptors.isEmpty, "the ring keeps the fd: it is not closed with the message")

        var noFd = decoder(.setVringKick, FakeFrontend.vringFile(index: 1, noFd: true))
        XCTAssertNil(try VringFile(decoding: &noFd).descriptor)

        XCTAssertEqual(decodeError(VringFile.self, .setVringKick, FakeFrontend.vringFile(index: 0, noFd: true), fds: [event.descriptor]),
                       .descriptorWithNoFdFlag(.setVringKick))
        XCTAssertEqual(decodeError(VringFile.self, .setVringKick, FakeFrontend.vringFile(index: 0)), .missingDescriptor(.setVringKick))
        XCTAssertEqual(decodeError(VringFile.self, .setVringErr, FakeFrontend.u64(0x200), fds: [event.descriptor]),
                       .invalidPayload(.setVringErr, "undefined bits set in the vring index word 0x200"))
        XCTAssertEqual(decodeError(VringFile.self, .setVringCall, FakeFrontend.vringFile(index: 4), fds: [event.descriptor]),
                       .vringIndexOutOfRange(.setVringCall, index: 4, count: 4))
    }

    func testMemoryTableMatchesRegionsToFdsAndValidatesRegions() throws {
        let memory = try FakeFrontendMemory()
        XCTAssertEqual(decodeError(MemoryTable.self, .setMemTable, FakeFrontend.memoryTable([memory.descriptor])),
                       .descriptorCountMismatch(.setMemTable, descriptors: 0, regions: 1))
        var decoder = decoder(.setMemTable, FakeFrontend.memoryTable([memory.descriptor]), fds: [memory.fd])
        let table = try MemoryTable(decoding: &decoder)
        XCTAssertEqual(table.regions.map(\.descriptor), [memory.descriptor])
        XCTAssertNoThrow(try table.validate(for: .setMemTable))

        var empty = self.decoder(.setMemTable, FakeFrontend.memoryTable([]))
        XCTAssertThrowsError(try MemoryTable(decoding: &empty).validate(for: .setMemTable)) {
            XCTAssertEqual($0 as? VhostUserProtocolError, .memoryTableRefused(.setMemTable, "no regions"))
        }
        var wrapping = memory.descriptor
        wrapping.guestPhysicalAddress = UInt64.max - 4095
        var bad = self.decoder(.setMemTable, FakeFrontend.memoryTable([wrapping]), fds: [memory.fd])
        XCTAssertThrowsError(try MemoryTable(decoding: &bad).validate(for: .setMemTable))
    }

    func testValuesAreCheckedByTheirTypes() throws {
        func validated<P: VhostUserPayload>(_ type: P.Type, _ request: VhostUserRequest, _ payload: [UInt8]) throws -> P {
            var decoder = decoder(request, payload)
            let value = try P(decoding: &decoder)
            try value.validate(for: request)
            return value
        }
        XCTAssertEqual(try validated(DeviceStatus.self, .setStatus, FakeFrontend.u64(0x0f)).status, 0x0f)
        XCTAssertThrowsError(try validated(DeviceStatus.self, .setStatus, FakeFrontend.u64(0x100)))
        XCTAssertEqual(try validated(MTU.self, .netSetMtu, FakeFrontend.u64(9000)).mtu, 9000)
        XCTAssertThrowsError(try validated(MTU.self, .netSetMtu, FakeFrontend.u64(67)))
        XCTAssertEqual(try validated(VringEnable.self, .setVringEnable, FakeFrontend.vringState(index: 1, num: 1)).enabled, true)
        XCTAssertThrowsError(try validated(VringEnable.self, .setVringEnable, FakeFrontend.vringState(index: 1, num: 2)))
        XCTAssertThrowsError(try validated(VringNum.self, .setVringNum, FakeFrontend.vringState(index: 0, num: 0)))
        XCTAssertThrowsError(try validated(VringAddress.self, .setVringAddr,
                                           FakeFrontend.vringAddress(index: 0, flags: 2, descriptor: 0, used: 0, avail: 0)))
        XCTAssertThrowsError(try validated(RarpMac.self, .sendRarp, [0x01, 0, 0, 0, 0, 1, 0, 0]), "multicast")
        XCTAssertThrowsError(try validated(RarpMac.self, .sendRarp, [UInt8](repeating: 0, count: 8)), "all zeros")
        XCTAssertEqual(try validated(RarpMac.self, .sendRarp, [0x52, 0x54, 0, 0x12, 0x34, 0x56, 0, 0]).mac, [0x52, 0x54, 0, 0x12, 0x34, 0x56])
    }
}
