import Glibc
import TestSupport
import VhostSystem
import XCTest
@testable import Virtio

final class GuestMemoryTests: XCTestCase {
    private func region(_ gpa: UInt64, _ size: UInt64, va: UInt64? = nil, offset: UInt64 = 0, fileSize: Int = 1 << 16) throws -> (GuestMemoryRegionDescriptor, FileDescriptor) {
        (GuestMemoryRegionDescriptor(guestPhysicalAddress: gpa, size: size, userspaceAddress: va ?? gpa + 0x1000_0000, mmapOffset: offset),
         try MemFD.create(name: "t", size: fileSize))
    }

    private func assertMapFails(_ descriptor: GuestMemoryRegionDescriptor, fd: FileDescriptor, _ expected: GuestMemoryError,
                                file: StaticString = #filePath, line: UInt = #line) {
        do {
            _ = try GuestMemoryRegion.map(descriptor, fd: fd)
            XCTFail("mapped \(descriptor)", file: file, line: line)
        } catch {
            XCTAssertEqual(error, expected, file: file, line: line)
        }
    }

    func testRegionOfSizeZeroIsRejected() throws {
        let (d, fd) = try region(0, 0)
        assertMapFails(d, fd: fd, .zeroSize)
    }

    func testGuestPhysicalAddressPlusSizeWrappingIsRejected() throws {
        let (d, fd) = try region(UInt64.max - 0xfff, 0x2000, va: 0x1000)
        assertMapFails(d, fd: fd, .addressOverflow)
    }

    func testUserspaceAddressPlusSizeWrappingIsRejected() throws {
        let (d, fd) = try region(0, 0x2000, va: UInt64.max - 0xfff)
        assertMapFails(d, fd: fd, .addressOverflow)
    }

    func testMmapOffsetPlusSizeWrappingIsRejected() throws {
        let (d, fd) = try region(0, 0x2000, offset: UInt64.max - 0xfff)
        assertMapFails(d, fd: fd, .addressOverflow)
    }

    func testFileShorterThanOffsetPlusSizeIsRejected() throws {
        let (d, fd) = try region(0, 0x10000, offset: 0x1000, fileSize: 0x10000)
        assertMapFails(d, fd: fd, .fileTooShort(needed: 0x11000, actual: 0x10000))
    }

    func testDescriptorThatIsNotAFileIsRejected() throws {
        let event = try EventFD()
        let d = GuestMemoryRegionDescriptor(guestPhysicalAddress: 0, size: 0x1000, userspaceAddress: 0, mmapOffset: 0)
        assertMapFails(d, fd: event.descriptor, .notMappable)
    }

    func testOverlappingGuestPhysicalRangesAreRejected() throws {
        let (a, fa) = try region(0, 0x8000, va: 0x10_0000)
        let (b, fb) = try region(0x7000, 0x8000, va: 0x20_0000)
        let regions = [try GuestMemoryRegion.map(a, fd: fa), try GuestMemoryRegion.map(b, fd: fb)]
        XCTAssertThrowsError(try GuestMemory(regions: regions)) { XCTAssertEqual($0 as? GuestMemoryError, .overlappingRegions) }
    }

    func testOverlappingFrontendVirtualRangesAreRejected() throws {
        let (a, fa) = try region(0, 0x8000, va: 0x10_0000)
        let (b, fb) = try region(0x10000, 0x8000, va: 0x10_4000)
        let regions = [try GuestMemoryRegion.map(a, fd: fa), try GuestMemoryRegion.map(b, fd: fb)]
        XCTAssertThrowsError(try GuestMemory(regions: regions)) { XCTAssertEqual($0 as? GuestMemoryError, .overlappingRegions) }
    }

    func testAdjacentRegionsAreAccepted() throws {
        let fixture = try GuestMemoryFixture.twoAdjacentRegions()
        XCTAssertEqual(fixture.memory.regions.count, 2)
        XCTAssertEqual(fixture.memory.totalSize, 2 << 20)
        XCTAssertEqual(fixture.memory.highestGuestPhysicalAddress, (2 << 20) - 1)
    }

    func testTooManyRegionsAreRejected() throws {
        var regions: [GuestMemoryRegion] = []
        for i in 0..<9 {
            let (d, fd) = try region(UInt64(i) * 0x10000, 0x1000, fileSize: 0x1000)
            regions.append(try GuestMemoryRegion.map(d, fd: fd))
        }
        XCTAssertThrowsError(try GuestMemory(regions: regions, maxRegions: GuestMemory.maxRegions)) {
            XCTAssertEqual($0 as? GuestMemoryError, .tooManyRegions)
        }
        XCTAssertNoThrow(try GuestMemory(regions: Array(regions.prefix(8)), maxRegions: GuestMemory.maxRegions))
        XCTAssertNoThrow(try GuestMemory(regions: regions))  // memory slots: up to 509
    }

    /// 509 regions (memory hotplug) of one memfd, given in a scrambled order, with gaps of
    /// several sizes between them: every address translates to its own region's bytes, a gap
    /// or a range that leaves its region to nothing; the 510th is refused, and an overlap
    /// anywhere in the list is found.
    func testFiveHundredNineRegionsTranslateLikeALinearScan() throws {
        let count = GuestMemory.maxMemorySlots
        let page: UInt64 = 0x1000
        let fd = try MemFD.create(name: "slots", size: (count + 1) * Int(page))
        // Region i: one page at GPA i * 3 pages (+ a page when i is odd), VA in reverse order.
        func descriptor(_ i: Int) -> GuestMemoryRegionDescriptor {
            GuestMemoryRegionDescriptor(guestPhysicalAddress: 0x1_0000_0000 + UInt64(i) * 3 * page + UInt64(i & 1) * page, size: page,
                                        userspaceAddress: 0x7000_0000_0000 - UInt64(i) * 2 * page, mmapOffset: UInt64(i) * page)
        }
        let order = (0..<count).map { ($0 * 211) % count }  // 211 is prime to 509: every index once
        XCTAssertEqual(Set(order).count, count)
        let regions = try order.map { try GuestMemoryRegion.map(descriptor($0), fd: fd) }
        let memory = try GuestMemory(regions: regions)
        // Each page holds its index, written through the region's own mapping.
        for region in regions { region.hostAddress.storeBytes(of: UInt32(region.descriptor.mmapOffset / page), as: UInt32.self) }
        for i in 0..<count {
            let d = descriptor(i)
            let start = try XCTUnwrap(memory.translateGuestPhysical(d.guestPhysicalAddress, length: page), "region \(i)")
            XCTAssertEqual(start.load(as: UInt32.self), UInt32(i))
            XCTAssertEqual(memory.translateGuestPhysical(d.guestPhysicalAddress + page - 1, length: 1), start + Int(page - 1))
            XCTAssertNil(memory.translateGuestPhysical(d.guestPhysicalAddress + page, length: 1), "the gap after region \(i)")
            XCTAssertNil(memory.translateGuestPhysical(d.guestPhysicalAddress + 1, length: page), "leaves region \(i)")
            XCTAssertNil(memory.translateGuestPhysical(d.guestPhysicalAddress &- 1, length: 1), "the gap before region \(i)")
            XCTAssertEqual(memory.translateFrontendVirtual(d.userspaceAddress, length: page), start)
        }
        XCTAssertNil(memory.translateGuestPhysical(0, length: 1))
        XCTAssertNil(memory.translateGuestPhysical(UInt64.max, length: 1))
        // Random ranges across the whole span against a scan of the descriptors.
        var random = SystemRandomNumberGenerator()
        let span = descriptor(count - 1).guestPhysicalAddress + page - descriptor(0).guestPhysicalAddress
        for _ in 0..<20_000 {
            let address = descriptor(0).guestPhysicalAddress - page + UInt64.random(in: 0..<(span + 2 * page), using: &random)
            let length = UInt64.random(in: 0...(page + 1), using: &random)
            let owner = regions.first { address >= $0.descriptor.guestPhysicalAddress && address - $0.descriptor.guestPhysicalAddress < page }
            let expected = owner.flatMap { region -> UnsafeMutableRawPointer? in
                let offset = address - region.descriptor.guestPhysicalAddress
                return length > 0 && offset + length <= page ? region.hostAddress + Int(offset) : nil
            }
            XCTAssertEqual(memory.translateGuestPhysical(address, length: length), expected, "\(address) + \(length)")
        }

        let extra = try GuestMemoryRegion.map(GuestMemoryRegionDescriptor(guestPhysicalAddress: 0x10_0000_0000, size: page,
                                                                            userspaceAddress: 0x10_0000_0000, mmapOffset: UInt64(count) * page), fd: fd)
        XCTAssertThrowsError(try GuestMemory(regions: regions + [extra])) { XCTAssertEqual($0 as? GuestMemoryError, .tooManyRegions) }
        // One page inside region 300's GPA, far from it in the list: found.
        let overlapping = try GuestMemoryRegion.map(GuestMemoryRegionDescriptor(
            guestPhysicalAddress: descriptor(300).guestPhysicalAddress + 0x800, size: page, userspaceAddress: 0x10_0000_0000,
            mmapOffset: UInt64(count) * page), fd: fd)
        XCTAssertThrowsError(try GuestMemory(regions: Array(regions.dropLast()) + [overlapping])) {
            XCTAssertEqual($0 as? GuestMemoryError, .overlappingRegions)
        }
    }

    func testTranslationStaysInsideOneRegion() throws {
        let fixture = try GuestMemoryFixture.twoAdjacentRegions(firstSize: 0x10000, secondSize: 0x10000)
        let memory = fixture.memory
        XCTAssertNotNil(memory.translateGuestPhysical(0, length: 0x10000))
        XCTAssertNotNil(memory.translateGuestPhysical(0xffff, length: 1))
        XCTAssertNil(memory.translateGuestPhysical(0xffff, length: 2), "crosses into the second region")
        XCTAssertNotNil(memory.translateGuestPhysical(0x10000, length: 0x10000))
        XCTAssertNil(memory.translateGuestPhysical(0x10000, length: 0x10001))
        XCTAssertNil(memory.translateGuestPhysical(0x20000, length: 1), "past the last region")
        XCTAssertNil(memory.translateGuestPhysical(0, length: 0), "length 0")
        XCTAssertNil(memory.translateGuestPhysical(UInt64.max, length: 2), "wraps")
        XCTAssertNil(memory.translateGuestPhysical(0x100, length: UInt64.max), "huge length")
        XCTAssertNil(memory.translateFrontendVirtual(0, length: 1), "guest-physical is not front-end virtual")
        let va = fixture.frontendVirtualAddress(ofGuestPhysical: 0x10010)
        XCTAssertEqual(memory.translateFrontendVirtual(va, length: 4), memory.translateGuestPhysical(0x10010, length: 4))
        XCTAssertNil(memory.translateFrontendVirtual(fixture.frontendVirtualAddress(ofGuestPhysical: 0xfff0), length: 0x20))
        XCTAssertEqual(memory.guestPhysicalAddress(ofFrontendVirtual: va), 0x10010)
    }

    func testMmapOffsetIsHonoured() throws {
        // The second region starts 4096 bytes into its memfd.
        let fixture = try GuestMemoryFixture.twoAdjacentRegions(firstSize: 0x10000, secondSize: 0x10000)
        fixture.write([1, 2, 3, 4], at: 0x10000)
        let host = try XCTUnwrap(fixture.memory.translateGuestPhysical(0x10000, length: 4))
        XCTAssertEqual(Array(UnsafeRawBufferPointer(start: host, count: 4)), [1, 2, 3, 4])
        XCTAssertEqual(fixture.driverMappings[1].base.load(fromByteOffset: 4096, as: UInt8.self), 1)
    }

    func testEmptyMemoryTranslatesNothing() {
        let memory = GuestMemory()
        XCTAssertNil(memory.translateGuestPhysical(0, length: 1))
        XCTAssertEqual(memory.totalSize, 0)
    }

    func testNoDescriptorOrMappingLeaks() throws {
        let fd = try MemFD.create(name: "leak", size: 0x20000)
        let descriptors = [
            GuestMemoryRegionDescriptor(guestPhysicalAddress: 0, size: 0x10000, userspaceAddress: 0x1000_0000, mmapOffset: 0),
            GuestMemoryRegionDescriptor(guestPhysicalAddress: 0x10000, size: 0x10000, userspaceAddress: 0x2000_0000, mmapOffset: 0x10000),
        ]
        let fdsBefore = FileDescriptor.openCount()
        let mapsBefore = Self.mappingCount()
        XCTAssertEqual(mapsBefore, 0)
        for _ in 0..<1000 {
            let memory = try GuestMemory(regions: descriptors.map { d throws(GuestMemoryError) in try GuestMemoryRegion.map(d, fd: fd) })
            XCTAssertNotNil(memory.translateGuestPhysical(0x10000, length: 1))
        }
        for _ in 0..<100 {  // failures must not leak either
            XCTAssertThrowsError(try GuestMemoryRegion.map(
                GuestMemoryRegionDescriptor(guestPhysicalAddress: 0, size: 0x30000, userspaceAddress: 0, mmapOffset: 0), fd: fd))
        }
        XCTAssertEqual(FileDescriptor.openCount(), fdsBefore)
        XCTAssertEqual(Self.mappingCount(), mapsBefore)
    }

    /// Mappings of the test's memfd in /proc/self/maps.
    private static func mappingCount() -> Int {
        guard let file = fopen("/proc/self/maps", "r") else { return -1 }
        defer { fclose(file) }
        var count = 0
        var line = [CChar](repeating: 0, count: 4096)
        while fgets(&line, Int32(line.count), file) != nil {
            let text = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            if text.contains("memfd:leak") { count += 1 }
        }
        return count
    }
}
