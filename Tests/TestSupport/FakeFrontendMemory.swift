import Glibc
import Synchronization
import VhostSystem
import Virtio

/// Guest memory a fake front-end hands over in SET_MEM_TABLE (the tests' and the hostile
/// tool's): one memfd region, mapped here too (a `GuestMemoryFixture`), with rings at fixed
/// places. Ring i (256 entries) has its descriptors at i * 0x4000, avail +0x1000, used +0x2000
/// (offsets from the region's start); `ring(i)` drives it as a `SplitGuestDriverRing`. Buffers
/// are the caller's to place: the cases keep them from 0x10000 up.
public final class FakeFrontendMemory: @unchecked Sendable {
    public let fixture: GuestMemoryFixture
    public let size: UInt64
    public let guestPhysicalAddress: UInt64
    public let userspaceAddress: UInt64
    /// Each ring gets 16 KiB: descriptors at +0, avail at +0x1000, used at +0x2000 (size <= 256).
    public static let ringStride: UInt64 = 0x4000
    public static let ringSize = 256
    private let rings = Mutex<[Int: SplitGuestDriverRing]>([:])

    public init(name: String = "fake-guest", size: UInt64 = 1 << 20, guestPhysicalAddress: UInt64 = 0,
                userspaceAddress: UInt64 = 0x7f00_0000_0000) throws {
        fixture = try GuestMemoryFixture(regions: [.init(guestPhysicalAddress: guestPhysicalAddress, size: size,
                                                         userspaceAddress: userspaceAddress)], name: name)
        self.size = size
        self.guestPhysicalAddress = guestPhysicalAddress
        self.userspaceAddress = userspaceAddress
    }

    /// The memfd (what SET_MEM_TABLE carries).
    public var fd: FileDescriptor { fixture.memoryFileDescriptors[0] }
    /// This process's mapping of the whole file (offset 0 = the region's start).
    public var mapping: MemoryMapping { fixture.driverMappings[0] }

    public var descriptor: GuestMemoryRegionDescriptor {
        GuestMemoryRegionDescriptor(guestPhysicalAddress: guestPhysicalAddress, size: size, userspaceAddress: userspaceAddress, mmapOffset: 0)
    }

    /// A second fd for the memfd (a message may carry one fd per region, each then owned by it).
    public func duplicateFD() -> FileDescriptor { try! FileDescriptor.duplicate(fd.rawValue) }

    /// The front-end virtual address (what SET_VRING_ADDR takes) of `offset` into the region.
    public func userAddress(_ offset: Int) -> UInt64 { userspaceAddress + UInt64(offset) }

    /// Shrinks the file under every mapping, as a hostile front-end would. This process's own
    /// mapping past `bytes` is gone too: touching it raises SIGBUS here, so write only below.
    public func shrink(to bytes: Int) { _ = ftruncate(fd.rawValue, off_t(bytes)) }

    /// Punches a hole of `length` bytes at `offset` (the size stays, as F_SEAL_SHRINK would
    /// allow): the pages read as zeros again, in this process's mapping too.
    public func punchHole(offset: Int, length: Int) throws { try fd.punchHole(offset: offset, length: length) }

    /// Zeroes the first `byteCount` bytes of the region (rings and buffers back to clean).
    public func zero(byteCount: Int) { mapping.base.initializeMemory(as: UInt8.self, repeating: 0, count: byteCount) }

    // MARK: Rings

    /// Front-end virtual addresses of ring `index`'s descriptor table, avail and used rings.
    public func ringAddresses(_ index: Int) -> (descriptor: UInt64, avail: UInt64, used: UInt64) {
        let base = userspaceAddress + UInt64(index) * Self.ringStride
        return (base, base + 0x1000, base + 0x2000)
    }

    public func vringAddressPayload(_ index: Int, flags: UInt32 = 0, log: UInt64 = 0) -> [UInt8] {
        let a = ringAddresses(index)
        return FakeFrontend.vringAddress(index: UInt32(index), flags: flags, descriptor: a.descriptor, used: a.used, avail: a.avail, log: log)
    }

    /// The guest driver of ring `index` (one per index, made on first use; memory is not zeroed).
    public func ring(_ index: Int) -> SplitGuestDriverRing {
        rings.withLock { rings in
            if let ring = rings[index] { return ring }
            let base = guestPhysicalAddress + UInt64(index) * Self.ringStride
            let ring = SplitGuestDriverRing(fixture: fixture, size: Self.ringSize, descriptorTableAddress: base,
                                            availAddress: base + 0x1000, usedAddress: base + 0x2000)
            rings[index] = ring
            return ring
        }
    }

    /// Writes avail.idx of ring `ring` (as the guest driver would).
    public func setAvailIndex(_ ring: Int, _ value: UInt16) { self.ring(ring).setAvailIndex(value) }

    /// used.flags of ring `ring` (VRING_USED_F_NO_NOTIFY is bit 0).
    public func usedFlags(_ ring: Int) -> UInt16 { self.ring(ring).usedFlags }

    public func setUsedFlags(_ ring: Int, _ value: UInt16) { self.ring(ring).usedFlags = value }

    public func setUsedIndex(_ ring: Int, _ value: UInt16) { self.ring(ring).setUsedIndex(value) }
}
