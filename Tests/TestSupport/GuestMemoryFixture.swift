import VhostSystem
import Virtio

/// Fake guest memory for tests: one or more memfd-backed regions, mapped twice like in a
/// real deployment — once by the back-end through `GuestMemory` (the `memory` property, the
/// code under test) and once by the "guest" through the fixture's own mappings (what
/// `write`, `read` and the guest drivers, `SplitGuestDriverRing` and `PackedGuestDriverRing`,
/// use). Nothing is shared but the memfd pages.
///
/// Defaults: region i has guest-physical address `guestPhysicalAddress`, a front-end virtual
/// address 0x7f00_0000_0000 above it (so code that mixes the two address spaces fails) and
/// its own memfd. A fake vhost-user front-end sends `frontendRegionDescriptors()` with
/// `memoryFileDescriptors` in SET_MEM_TABLE.
///
///     let fixture = try GuestMemoryFixture(regions: [.init(guestPhysicalAddress: 0, size: 1 << 20)])
///     let ring = try SplitGuestDriverRing(fixture: fixture, size: 256, ringAddress: 0, dataAddress: 0x10000, dataSize: 0x80000)
///     let queue = SplitVirtqueue(layout: try ring.layout(), memory: fixture.memory, ...)
///     ring.postTransmit(frame: bytes, headerSize: 12)
public final class GuestMemoryFixture: @unchecked Sendable {  // test-only; used from one thread
    public static let defaultFrontendVirtualOffset: UInt64 = 0x7f00_0000_0000

    public struct Region: Sendable {
        public var guestPhysicalAddress: UInt64
        public var size: UInt64
        public var userspaceAddress: UInt64
        /// Where the region starts in its memfd; the file is made mmapOffset + size long.
        public var mmapOffset: UInt64

        public init(guestPhysicalAddress: UInt64, size: UInt64, userspaceAddress: UInt64? = nil, mmapOffset: UInt64 = 0) {
            self.guestPhysicalAddress = guestPhysicalAddress
            self.size = size
            self.userspaceAddress = userspaceAddress ?? guestPhysicalAddress + GuestMemoryFixture.defaultFrontendVirtualOffset
            self.mmapOffset = mmapOffset
        }
    }

    public let regions: [Region]
    /// One memfd per region (the fds a front-end would send).
    public let memoryFileDescriptors: [FileDescriptor]
    /// The guest's own view of each region's file (offset 0 = file offset 0).
    public let driverMappings: [MemoryMapping]
    /// The back-end's view: the object under test.
    public let memory: GuestMemory

    /// Each region gets its own memfd, named `name`-i.
    public init(regions: [Region], name: String = "guest-ram") throws {
        self.regions = regions
        var fds: [FileDescriptor] = []
        var mappings: [MemoryMapping] = []
        var mapped: [GuestMemoryRegion] = []
        for (i, region) in regions.enumerated() {
            let fileSize = Int(region.mmapOffset + region.size)
            let fd = try MemFD.create(name: "\(name)-\(i)", size: fileSize)
            fds.append(fd)
            mappings.append(try MemoryMapping(descriptor: fd, length: fileSize))
            mapped.append(try GuestMemoryRegion.map(Self.descriptor(region), fd: fd))
        }
        memoryFileDescriptors = fds
        driverMappings = mappings
        memory = try GuestMemory(regions: mapped)
    }

    /// One region of `size` bytes at guest-physical 0.
    public convenience init(size: UInt64 = 1 << 20) throws {
        try self.init(regions: [Region(guestPhysicalAddress: 0, size: size)])
    }

    /// Two adjacent regions (guest-physical [0, firstSize) and [firstSize, firstSize +
    /// secondSize)) backed by different memfds, so a range crossing the boundary is
    /// contiguous to the guest but not to the back-end.
    public static func twoAdjacentRegions(firstSize: UInt64 = 1 << 20, secondSize: UInt64 = 1 << 20) throws -> GuestMemoryFixture {
        try GuestMemoryFixture(regions: [
            Region(guestPhysicalAddress: 0, size: firstSize),
            Region(guestPhysicalAddress: firstSize, size: secondSize, mmapOffset: 4096),
        ])
    }

    static func descriptor(_ region: Region) -> GuestMemoryRegionDescriptor {
        GuestMemoryRegionDescriptor(guestPhysicalAddress: region.guestPhysicalAddress, size: region.size,
                                    userspaceAddress: region.userspaceAddress, mmapOffset: region.mmapOffset)
    }

    /// What a front-end puts in SET_MEM_TABLE, in the order of `memoryFileDescriptors`.
    public func frontendRegionDescriptors() -> [GuestMemoryRegionDescriptor] { regions.map(Self.descriptor) }

    /// The guest's pointer to guest-physical `address` (which must be mapped, else a trap).
    public func pointer(guestPhysical address: UInt64) -> UnsafeMutableRawPointer {
        for (i, region) in regions.enumerated()
        where address >= region.guestPhysicalAddress && address - region.guestPhysicalAddress < region.size {
            return driverMappings[i].base + Int(region.mmapOffset + address - region.guestPhysicalAddress)
        }
        preconditionFailure("guest-physical address \(address) is not in the fixture")
    }

    /// The front-end virtual address of a guest-physical address.
    public func frontendVirtualAddress(ofGuestPhysical address: UInt64) -> UInt64 {
        for region in regions where address >= region.guestPhysicalAddress && address - region.guestPhysicalAddress < region.size {
            return region.userspaceAddress + (address - region.guestPhysicalAddress)
        }
        preconditionFailure("guest-physical address \(address) is not in the fixture")
    }

    /// Writes bytes at a guest-physical address: one copy when the range lies in one region,
    /// else byte by byte so it may cross regions.
    public func write(_ bytes: [UInt8], at address: UInt64) {
        let fitsOneRegion = !bytes.isEmpty && regions.contains { region in
            address >= region.guestPhysicalAddress && address - region.guestPhysicalAddress < region.size
                && UInt64(bytes.count) <= region.size - (address - region.guestPhysicalAddress)
        }
        if fitsOneRegion {
            bytes.withUnsafeBytes { pointer(guestPhysical: address).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
            return
        }
        for (i, byte) in bytes.enumerated() {
            pointer(guestPhysical: address + UInt64(i)).storeBytes(of: byte, as: UInt8.self)
        }
    }

    public func read(at address: UInt64, count: Int) -> [UInt8] {
        (0..<count).map { pointer(guestPhysical: address + UInt64($0)).load(as: UInt8.self) }
    }

    public func fill(_ value: UInt8, at address: UInt64, count: Int) {
        write([UInt8](repeating: value, count: count), at: address)
    }
}
