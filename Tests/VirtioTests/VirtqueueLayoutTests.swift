import TestSupport
import XCTest
@testable import Virtio

final class VirtqueueLayoutTests: XCTestCase {
    private func map(_ fixture: GuestMemoryFixture, size: Int = 16, desc: UInt64, avail: UInt64, used: UInt64) throws -> VirtqueueLayout {
        try VirtqueueLayout.map(size: size, descriptorAddress: desc, availAddress: avail, usedAddress: used,
                                logGuestAddress: nil, memory: fixture.memory)
    }

    private func assertFails(_ expected: VirtqueueError, file: StaticString = #filePath, line: UInt = #line,
                             _ body: () throws -> VirtqueueLayout) {
        XCTAssertThrowsError(try body(), file: file, line: line) { XCTAssertEqual($0 as? VirtqueueError, expected, file: file, line: line) }
    }

    func testValidLayoutTranslatesEachTable() throws {
        let fixture = try GuestMemoryFixture()
        let ring = try SplitGuestDriverRing(fixture: fixture, size: 256, ringAddress: 0x1000)
        let layout = try ring.layout()
        XCTAssertEqual(layout.size, 256)
        XCTAssertEqual(layout.descriptorTable, fixture.memory.translateGuestPhysical(0x1000, length: 1))
        XCTAssertEqual(layout.usedRing, fixture.memory.translateGuestPhysical(ring.usedAddress, length: 1))
        XCTAssertNil(layout.usedLogGuestAddress)
        XCTAssertEqual(try ring.layout(logUsedRing: true).usedLogGuestAddress, ring.usedAddress)
    }

    func testSizeMustBeAPowerOfTwoUpTo32768() throws {
        let fixture = try GuestMemoryFixture(size: 1 << 20)
        let va = GuestMemoryFixture.defaultFrontendVirtualOffset
        for size in [0, 3, 100, 65536, -16] {
            assertFails(.invalidSize) { try map(fixture, size: size, desc: va, avail: va + 0x80000, used: va + 0x90000) }
        }
        XCTAssertNoThrow(try map(fixture, size: 32768, desc: va, avail: va + 0x80000, used: va + 0x90000))
        XCTAssertNoThrow(try map(fixture, size: 1, desc: va, avail: va + 0x80000, used: va + 0x90000))
    }

    func testRingsOutsideEveryRegionAreRejected() throws {
        let fixture = try GuestMemoryFixture(size: 0x10000)
        let va = GuestMemoryFixture.defaultFrontendVirtualOffset
        assertFails(.unmappedDescriptorTable) { try map(fixture, desc: va + 0x100000, avail: va + 0x1000, used: va + 0x2000) }
        assertFails(.unmappedAvailRing) { try map(fixture, desc: va, avail: va + 0x100000, used: va + 0x2000) }
        assertFails(.unmappedUsedRing) { try map(fixture, desc: va, avail: va + 0x1000, used: va + 0x100000) }
        // Guest-physical addresses are not front-end virtual addresses.
        assertFails(.unmappedDescriptorTable) { try map(fixture, desc: 0, avail: 0x1000, used: 0x2000) }
    }

    func testRingsPartlyMappedAreRejected() throws {
        let fixture = try GuestMemoryFixture(size: 0x10000)
        let va = GuestMemoryFixture.defaultFrontendVirtualOffset
        // 16 descriptors = 256 bytes; start 128 bytes before the end.
        assertFails(.unmappedDescriptorTable) { try map(fixture, desc: va + 0x10000 - 128, avail: va + 0x1000, used: va + 0x2000) }
        // avail ring is 6 + 32 = 38 bytes: the used_event slot falls off the end.
        assertFails(.unmappedAvailRing) { try map(fixture, desc: va, avail: va + 0x10000 - 36, used: va + 0x2000) }
        // used ring is 6 + 128 = 134 bytes: the avail_event slot falls off the end.
        assertFails(.unmappedUsedRing) { try map(fixture, desc: va, avail: va + 0x1000, used: va + 0x10000 - 132) }
        XCTAssertNoThrow(try map(fixture, desc: va + 0x10000 - 256, avail: va + 0x10000 - 300, used: va + 0x10000 - 440))
    }

    func testRingsAcrossTwoRegionsAreRejected() throws {
        // Contiguous to the guest, but two separate mappings on this side.
        let fixture = try GuestMemoryFixture.twoAdjacentRegions(firstSize: 0x10000, secondSize: 0x10000)
        let boundary = fixture.frontendVirtualAddress(ofGuestPhysical: 0x10000 - 128)
        let va = fixture.frontendVirtualAddress(ofGuestPhysical: 0)
        assertFails(.unmappedDescriptorTable) { try map(fixture, desc: boundary, avail: va + 0x1000, used: va + 0x2000) }
        assertFails(.unmappedAvailRing) { try map(fixture, desc: va, avail: boundary + 112, used: va + 0x2000) }
        assertFails(.unmappedUsedRing) { try map(fixture, desc: va, avail: va + 0x1000, used: boundary + 64) }
    }

    func testMisalignedRingsAreRejected() throws {
        let fixture = try GuestMemoryFixture(size: 0x10000)
        let va = GuestMemoryFixture.defaultFrontendVirtualOffset
        assertFails(.misaligned) { try map(fixture, desc: va + 8, avail: va + 0x1000, used: va + 0x2000) }
        assertFails(.misaligned) { try map(fixture, desc: va, avail: va + 0x1001, used: va + 0x2000) }
        assertFails(.misaligned) { try map(fixture, desc: va, avail: va + 0x1000, used: va + 0x2002) }
    }

    func testLogAddressThatWrapsIsRejected() throws {
        let fixture = try GuestMemoryFixture(size: 0x10000)
        let va = GuestMemoryFixture.defaultFrontendVirtualOffset
        assertFails(.invalidLogAddress) {
            try VirtqueueLayout.map(size: 16, descriptorAddress: va, availAddress: va + 0x1000, usedAddress: va + 0x2000,
                                    logGuestAddress: UInt64.max - 8, memory: fixture.memory)
        }
    }
}
