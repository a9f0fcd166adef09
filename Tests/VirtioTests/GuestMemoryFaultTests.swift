import CVhostShims
import Glibc
import TestSupport
import VhostSystem
import XCTest
@testable import Virtio

/// A front-end's memory that shrinks under us costs its session (the fault flag), never the
/// process: the SIGBUS handler maps anonymous memory over the mapping and the access
/// completes. Without the guard these tests die with SIGBUS.
final class GuestMemoryFaultTests: XCTestCase {
    private let regionSize: UInt64 = 1 << 20

    private func region(_ fd: FileDescriptor, flag: GuestFaultFlag?) throws -> GuestMemoryRegion {
        try GuestMemoryRegion.map(GuestMemoryRegionDescriptor(guestPhysicalAddress: 0, size: regionSize, userspaceAddress: 0x7f00_0000_0000,
                                                              mmapOffset: 0), fd: fd, faultFlag: flag)
    }

    func testShrunkRegionRaisesTheFlagAndReadsZeros() throws {
        let fd = try MemFD.create(name: "shrinking-guest", size: Int(regionSize))
        let flag = GuestFaultFlag()
        let mapped = try region(fd, flag: flag)
        mapped.hostAddress.storeBytes(of: 0xAB, toByteOffset: 4096, as: UInt8.self)
        let before = GuestMemoryGuard.containedFaults
        XCTAssertEqual(ftruncate(fd.rawValue, 0), 0)
        // Unsafe: the read of a page the file no longer has, which the guard contains.
        let value = mapped.hostAddress.load(fromByteOffset: 4096, as: UInt8.self)
        XCTAssertEqual(value, 0, "the access completed on anonymous memory")
        XCTAssertEqual(flag.raised, .memoryFault)
        XCTAssertEqual(GuestMemoryGuard.containedFaults, before + 1)
        mapped.hostAddress.storeBytes(of: 1, toByteOffset: Int(regionSize) - 1, as: UInt8.self)
        XCTAssertEqual(GuestMemoryGuard.containedFaults, before + 1, "the whole mapping was replaced at once")
    }

    func testHalfShrunkRegionIsContainedToo() throws {
        let fd = try MemFD.create(name: "halved-guest", size: Int(regionSize))
        let flag = GuestFaultFlag()
        let mapped = try region(fd, flag: flag)
        XCTAssertEqual(ftruncate(fd.rawValue, off_t(regionSize / 2)), 0)
        _ = mapped.hostAddress.load(fromByteOffset: Int(regionSize) - 8, as: UInt64.self)
        XCTAssertEqual(flag.raised, .memoryFault)
    }

    func testShrunkDirtyLogRaisesTheFlag() throws {
        let fd = try MemFD.create(name: "shrinking-log", size: 8192)
        let flag = GuestFaultFlag()
        let log = try DirtyLog(mapping: try MemoryMapping(descriptor: fd, length: 8192, guarding: flag), offset: 0, size: 8192)
        XCTAssertEqual(ftruncate(fd.rawValue, 0), 0)
        log.markGuestPhysical(0x100_0000, length: 4096)
        XCTAssertEqual(flag.raised, .memoryFault)
    }

    func testSealedMemfdNeedsNoGuard() throws {
        let fd = FileDescriptor(adopting: vhost_test_memfd_sealable())
        XCTAssertEqual(ftruncate(fd.rawValue, off_t(regionSize)), 0)
        XCTAssertFalse(fd.isSealedAgainstShrinking)
        XCTAssertEqual(vhost_test_add_shrink_seal(fd.rawValue), 0)
        XCTAssertTrue(fd.isSealedAgainstShrinking)
        XCTAssertFalse(try region(fd, flag: GuestFaultFlag()).mapping.isGuarded, "a sealed memfd takes no guard slot")
        let unsealed = try MemFD.create(name: "unsealed-guest", size: Int(regionSize))
        XCTAssertTrue(try region(unsealed, flag: GuestFaultFlag()).mapping.isGuarded)
        XCTAssertNotEqual(ftruncate(fd.rawValue, 0), 0, "the kernel refuses to shrink it")
    }

    /// A region deep inside a sparse file maps its own size, not offset + size: a front-end
    /// cannot exhaust the address space with huge offsets.
    func testRegionAtAHugeOffsetMapsOnlyItsOwnRange() throws {
        let offset: UInt64 = 1 << 44
        let fd = try MemFD.create(name: "sparse-guest", size: 0)
        XCTAssertEqual(ftruncate(fd.rawValue, off_t(offset + 2 * regionSize)), 0)
        let mapped = try GuestMemoryRegion.map(GuestMemoryRegionDescriptor(guestPhysicalAddress: 0, size: regionSize,
                                                                           userspaceAddress: 0x7f00_0000_0000, mmapOffset: offset + 100),
                                               fd: fd, faultFlag: nil)
        XCTAssertLessThanOrEqual(mapped.mapping.length, Int(regionSize) + 8192)
        XCTAssertEqual(mapped.hostAddress - mapped.mapping.base, 100, "the region starts where its offset points in the page")
    }
}

// Sealing needs MFD_ALLOW_SEALING and F_ADD_SEALS: GNU names, through raw values here.
private func vhost_test_memfd_sealable() -> Int32 {
    let mfdAllowSealing: UInt32 = 2
    return vhost_shims_memfd_create("sealable-guest", VHOST_SHIMS_MFD_CLOEXEC | mfdAllowSealing)
}

private func vhost_test_add_shrink_seal(_ fd: Int32) -> Int32 {
    let addSeals: Int32 = 1033, sealShrink: Int32 = 2
    return fcntl(fd, addSeals, sealShrink)
}
