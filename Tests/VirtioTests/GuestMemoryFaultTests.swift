import CVhostShims
import Foundation
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

    /// F_SEAL_SHRINK is no reason to skip the guard: it does not stop a hole being punched.
    func testSealedMemfdIsGuardedToo() throws {
        let fd = try sealedMemfd(name: "sealed-guest", flags: 0, size: regionSize)
        XCTAssertNotEqual(ftruncate(fd.rawValue, 0), 0, "the kernel refuses to shrink it")
        XCTAssertTrue(try region(fd, flag: GuestFaultFlag()).mapping.isGuarded, "a sealed memfd is guarded like any file")
    }

    /// A hole punched in a sealed tmpfs memfd reads back as zeros (tmpfs finds a new page):
    /// no fault, the flag stays down. The hugetlbfs case below is the one that faults.
    func testHolePunchedInASealedMemfdReadsZeros() throws {
        let fd = try sealedMemfd(name: "punched-guest", flags: 0, size: regionSize)
        let flag = GuestFaultFlag()
        let mapped = try region(fd, flag: flag)
        mapped.hostAddress.storeBytes(of: 0xAB, toByteOffset: 4096, as: UInt8.self)
        XCTAssertNoThrow(try fd.punchHole(offset: 0, length: Int(regionSize)), "F_SEAL_SHRINK allows a hole")
        XCTAssertEqual(mapped.hostAddress.load(fromByteOffset: 4096, as: UInt8.self), 0)
        XCTAssertTrue(flag.raised.isEmpty)
    }

    /// A hugetlbfs memfd can be sealed against shrinking, and still faults: after a hole is
    /// punched, the next access needs a fresh hugepage, and with none free it raises SIGBUS.
    /// Before every mapping was guarded this killed the test process. The pool is emptied
    /// by reserving (not touching) every free page for a few microseconds.
    func testHolePunchedInASealedHugetlbMemfdIsContained() throws {
        let pool = IntegrationEnvironment.hugepageInfo()
        guard pool.free - pool.reserved >= 1, pool.pageSizeKiB > 0 else {
            print("SKIP \(#function): no free hugepage (\(pool.free) free, \(pool.reserved) reserved)")
            throw XCTSkip("no free hugepage")
        }
        let overcommit = (try? String(contentsOfFile: "/proc/sys/vm/nr_overcommit_hugepages", encoding: .utf8)) ?? "0"
        guard Int(overcommit.trimmingCharacters(in: .whitespacesAndNewlines)) == 0 else {
            print("SKIP \(#function): vm.nr_overcommit_hugepages is \(overcommit): a fault would find a surplus page")
            throw XCTSkip("hugepage overcommit on")
        }
        let page = pool.pageSizeKiB * 1024
        let mfdHugetlb: UInt32 = 4
        let fd = try sealedMemfd(name: "sealed-hugetlb-guest", flags: mfdHugetlb, size: UInt64(page))
        let flag = GuestFaultFlag()
        let mapped = try GuestMemoryRegion.map(GuestMemoryRegionDescriptor(guestPhysicalAddress: 0, size: UInt64(page),
                                                                           userspaceAddress: 0x7f00_0000_0000, mmapOffset: 0),
                                               fd: fd, faultFlag: flag)
        XCTAssertTrue(mapped.mapping.isGuarded)
        mapped.hostAddress.storeBytes(of: 0xAB, toByteOffset: 64, as: UInt8.self)
        for attempt in 1...3 {
            XCTAssertNoThrow(try fd.punchHole(offset: 0, length: page), "F_SEAL_SHRINK allows a hole")
            let now = IntegrationEnvironment.hugepageInfo()
            let filler = try MemFD.create(name: "hugepage-filler", size: 0, flags: mfdHugetlb)
            let fillerLength = max(now.free - now.reserved, 0) * page
            // Unsafe: a shared hugetlbfs mapping reserves its pages at mmap; never touched.
            let reservation = fillerLength == 0 ? nil
                : ftruncate(filler.rawValue, off_t(fillerLength)) == 0 ? mmap(nil, fillerLength, PROT_READ, MAP_SHARED, filler.rawValue, 0) : nil
            // Unsafe: the access the guard contains (the page is gone and none is free).
            let value = mapped.hostAddress.load(fromByteOffset: 64, as: UInt8.self)
            if let reservation, reservation != MAP_FAILED { munmap(reservation, fillerLength) }
            XCTAssertEqual(value, 0)
            if !flag.raised.isEmpty { break }
            XCTAssertLessThan(attempt, 3, "no fault in 3 tries: another process freed hugepages each time")
        }
        XCTAssertEqual(flag.raised, .memoryFault)
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

/// A memfd (with `flags` added, e.g. MFD_HUGETLB) of `size` bytes, sealed with
/// F_SEAL_SHRINK. Sealing needs MFD_ALLOW_SEALING and F_ADD_SEALS: GNU names, as raw values.
private func sealedMemfd(name: String, flags: UInt32, size: UInt64) throws -> FileDescriptor {
    let mfdAllowSealing: UInt32 = 2, addSeals: Int32 = 1033, getSeals: Int32 = 1034, sealShrink: Int32 = 2
    let fd = try MemFD.create(name: name, size: Int(size), flags: mfdAllowSealing | flags)
    XCTAssertEqual(fcntl(fd.rawValue, addSeals, sealShrink), 0)
    XCTAssertEqual(fcntl(fd.rawValue, getSeals) & sealShrink, sealShrink)
    return fd
}

