import CVhostShims
import VhostSystem
import Virtio

/// Fake guest memory for tests: one or more memfd-backed regions, mapped twice like in a
/// real deployment — once by the back-end through `GuestMemory` (the `memory` property, the
/// code under test) and once by the "guest" through the fixture's own mappings (what
/// `write`, `read` and `GuestDriverRing` use). Nothing is shared but the memfd pages.
///
/// Defaults: region i has guest-physical address `guestPhysicalAddress`, a front-end virtual
/// address 0x7f00_0000_0000 above it (so code that mixes the two address spaces fails) and
/// its own memfd. A fake vhost-user front-end sends `frontendRegionDescriptors()` with
/// `memoryFileDescriptors` in SET_MEM_TABLE.
///
///     let fixture = try GuestMemoryFixture(regions: [.init(guestPhysicalAddress: 0, size: 1 << 20)])
///     let ring = try GuestDriverRing(fixture: fixture, size: 256, ringAddress: 0, dataAddress: 0x10000, dataSize: 0x80000)
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

    public init(regions: [Region]) throws {
        self.regions = regions
        var fds: [FileDescriptor] = []
        var mappings: [MemoryMapping] = []
        var mapped: [GuestMemoryRegion] = []
        for (i, region) in regions.enumerated() {
            let fileSize = Int(region.mmapOffset + region.size)
            let fd = try MemFD.create(name: "guest-ram-\(i)", size: fileSize)
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

    /// Writes bytes at a guest-physical address, byte by byte so a range may cross regions.
    public func write(_ bytes: [UInt8], at address: UInt64) {
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

/// The guest driver side of one split ring placed in a `GuestMemoryFixture`: writes
/// descriptors and avail entries as a virtio driver would, and reads used entries back.
/// Descriptors are handed out round-robin and buffers from a bump allocator in
/// [dataAddress, dataAddress + dataSize) that wraps; fine for tests where the device
/// completes everything in the burst. Hostile tests use `writeDescriptor`,
/// `writeAvailSlot` and `setAvailIndex` to build any ring state.
public final class GuestDriverRing: @unchecked Sendable {  // test-only; used from one thread
    public static let next: UInt16 = 1
    public static let write: UInt16 = 2
    public static let indirect: UInt16 = 4

    public let fixture: GuestMemoryFixture
    public let size: Int
    /// Guest-physical addresses of the three tables.
    public let descriptorTableAddress: UInt64
    public let availAddress: UInt64
    public let usedAddress: UInt64
    public let dataAddress: UInt64
    public let dataSize: UInt64

    public private(set) var availIndex: UInt16 = 0
    public private(set) var lastSeenUsedIndex: UInt16 = 0
    private var nextDescriptor = 0
    private var dataCursor: UInt64 = 0
    /// The buffers of each posted receive chain, to read what the device wrote.
    public private(set) var receiveBuffers: [UInt16: [(address: UInt64, length: Int)]] = [:]

    /// Places the ring at `ringAddress` (descriptor table, then avail ring, then the used
    /// ring 64-byte aligned) and zeroes it.
    public init(fixture: GuestMemoryFixture, size: Int, ringAddress: UInt64 = 0, dataAddress: UInt64 = 0x10000,
                dataSize: UInt64 = 0x40000) throws {
        self.fixture = fixture
        self.size = size
        descriptorTableAddress = ringAddress
        availAddress = ringAddress + 16 * UInt64(size)
        usedAddress = (availAddress + 6 + 2 * UInt64(size) + 63) & ~63
        self.dataAddress = dataAddress
        self.dataSize = dataSize
        fixture.fill(0, at: ringAddress, count: Int(usedAddress - ringAddress) + 6 + 8 * size)
    }

    /// The ring's layout, from front-end virtual addresses as SET_VRING_ADDR gives them.
    public func layout(logUsedRing: Bool = false) throws -> VirtqueueLayout {
        try VirtqueueLayout.map(size: size,
                                descriptorAddress: fixture.frontendVirtualAddress(ofGuestPhysical: descriptorTableAddress),
                                availAddress: fixture.frontendVirtualAddress(ofGuestPhysical: availAddress),
                                usedAddress: fixture.frontendVirtualAddress(ofGuestPhysical: usedAddress),
                                logGuestAddress: logUsedRing ? usedAddress : nil, memory: fixture.memory)
    }

    // MARK: Raw access

    public func writeDescriptor(_ index: Int, address: UInt64, length: UInt32, flags: UInt16 = 0, next: UInt16 = 0) {
        writeDescriptor(at: descriptorTableAddress + 16 * UInt64(index), address: address, length: length, flags: flags, next: next)
    }

    /// Writes one 16-byte descriptor anywhere (an indirect table entry).
    public func writeDescriptor(at tableAddress: UInt64, address: UInt64, length: UInt32, flags: UInt16 = 0, next: UInt16 = 0) {
        let p = fixture.pointer(guestPhysical: tableAddress)
        p.storeBytes(of: address.littleEndian, toByteOffset: 0, as: UInt64.self)
        p.storeBytes(of: length.littleEndian, toByteOffset: 8, as: UInt32.self)
        p.storeBytes(of: flags.littleEndian, toByteOffset: 12, as: UInt16.self)
        p.storeBytes(of: next.littleEndian, toByteOffset: 14, as: UInt16.self)
    }

    public func readDescriptor(_ index: Int) -> (address: UInt64, length: UInt32, flags: UInt16, next: UInt16) {
        let p = fixture.pointer(guestPhysical: descriptorTableAddress + 16 * UInt64(index))
        return (p.load(fromByteOffset: 0, as: UInt64.self), p.load(fromByteOffset: 8, as: UInt32.self),
                p.load(fromByteOffset: 12, as: UInt16.self), p.load(fromByteOffset: 14, as: UInt16.self))
    }

    /// Writes avail.ring[slot % size] without publishing it.
    public func writeAvailSlot(_ slot: UInt16, head: UInt16) {
        fixture.pointer(guestPhysical: availAddress + 4 + 2 * UInt64(Int(slot) % size)).storeBytes(of: head.littleEndian, as: UInt16.self)
    }

    /// Sets avail.idx to anything (release, as a driver publishes).
    public func setAvailIndex(_ index: UInt16) {
        availIndex = index
        vhost_shims_store_release_u16(fixture.pointer(guestPhysical: availAddress + 2), index.littleEndian)
    }

    /// Puts `head` in the next avail slot and publishes it.
    public func publish(head: UInt16) {
        writeAvailSlot(availIndex, head: head)
        setAvailIndex(availIndex &+ 1)
    }

    public var availFlags: UInt16 {
        get { fixture.pointer(guestPhysical: availAddress).load(as: UInt16.self) }
        set { fixture.pointer(guestPhysical: availAddress).storeBytes(of: newValue, as: UInt16.self) }
    }

    /// used_event (EVENT_IDX): interrupt when used.idx passes this.
    public var usedEvent: UInt16 {
        get { fixture.pointer(guestPhysical: availAddress + 4 + 2 * UInt64(size)).load(as: UInt16.self) }
        set { fixture.pointer(guestPhysical: availAddress + 4 + 2 * UInt64(size)).storeBytes(of: newValue, as: UInt16.self) }
    }

    public var usedFlags: UInt16 { fixture.pointer(guestPhysical: usedAddress).load(as: UInt16.self) }
    public var usedIndex: UInt16 { vhost_shims_load_acquire_u16(fixture.pointer(guestPhysical: usedAddress + 2)) }
    /// avail_event (EVENT_IDX): the device wants a kick when avail.idx passes this.
    public var availEvent: UInt16 { fixture.pointer(guestPhysical: usedAddress + 4 + 8 * UInt64(size)).load(as: UInt16.self) }

    /// Used entries published since the last call.
    public func takeUsedEntries() -> [(id: UInt32, length: UInt32)] {
        var entries: [(id: UInt32, length: UInt32)] = []
        let published = usedIndex
        while lastSeenUsedIndex != published {
            let p = fixture.pointer(guestPhysical: usedAddress + 4 + 8 * UInt64(Int(lastSeenUsedIndex) % size))
            entries.append((p.load(fromByteOffset: 0, as: UInt32.self), p.load(fromByteOffset: 4, as: UInt32.self)))
            lastSeenUsedIndex &+= 1
        }
        return entries
    }

    // MARK: Allocation

    public func allocateDescriptor() -> Int {
        defer { nextDescriptor = (nextDescriptor + 1) % size }
        return nextDescriptor
    }

    /// `length` bytes of the data area (16-byte aligned); wraps to the start when full.
    public func allocateBuffer(_ length: Int) -> UInt64 {
        let rounded = (UInt64(length) + 15) & ~15
        precondition(rounded <= dataSize, "buffer larger than the fixture's data area")
        if dataCursor + rounded > dataSize { dataCursor = 0 }
        defer { dataCursor += rounded }
        return dataAddress + dataCursor
    }

    // MARK: Driver operations

    /// Serializes header (`headerSize` bytes) + frame, splits it into descriptors of the
    /// given `segments` lengths (default: one descriptor), chains them directly or through an
    /// indirect table, and publishes the chain. Returns the head.
    @discardableResult
    public func postTransmit(frame: [UInt8], header: VirtioNetHeader = VirtioNetHeader(), headerSize: Int,
                             segments: [Int]? = nil, indirect: Bool = false) -> UInt16 {
        var bytes = [UInt8](repeating: 0, count: headerSize)
        bytes.withUnsafeMutableBytes { header.store(to: $0.baseAddress!, size: headerSize) }
        bytes += frame
        let lengths = segments ?? [bytes.count]
        precondition(lengths.reduce(0, +) == bytes.count, "segments must add up to header + frame")
        var buffers: [(UInt64, Int)] = []
        var offset = 0
        for length in lengths {
            let address = allocateBuffer(length)
            fixture.write(Array(bytes[offset..<offset + length]), at: address)
            buffers.append((address, length))
            offset += length
        }
        let head = postChain(buffers, writable: false, indirect: indirect)
        publish(head: head)
        return head
    }

    /// Posts one receive chain made of buffers of the given sizes; returns its head.
    @discardableResult
    public func postReceive(bufferSizes: [Int], indirect: Bool = false) -> UInt16 {
        postReceive(buffers: bufferSizes.map { (allocateBuffer($0), $0) }, indirect: indirect)
    }

    /// Posts one receive chain over explicit guest-physical buffers; returns its head.
    @discardableResult
    public func postReceive(buffers: [(address: UInt64, length: Int)], indirect: Bool = false) -> UInt16 {
        for buffer in buffers { fixture.fill(0xEE, at: buffer.address, count: buffer.length) }
        let head = postChain(buffers.map { ($0.address, $0.length) }, writable: true, indirect: indirect)
        receiveBuffers[head] = buffers
        publish(head: head)
        return head
    }

    /// Writes a chain's descriptors (not published); returns the head.
    public func postChain(_ buffers: [(UInt64, Int)], writable: Bool, indirect: Bool) -> UInt16 {
        let flags: UInt16 = writable ? Self.write : 0
        if indirect {
            let table = allocateBuffer(16 * buffers.count)
            for (i, buffer) in buffers.enumerated() {
                let last = i == buffers.count - 1
                writeDescriptor(at: table + 16 * UInt64(i), address: buffer.0, length: UInt32(buffer.1),
                                flags: flags | (last ? 0 : Self.next), next: last ? 0 : UInt16(i + 1))
            }
            let head = allocateDescriptor()
            writeDescriptor(head, address: table, length: UInt32(16 * buffers.count), flags: Self.indirect)
            return UInt16(head)
        }
        let indices = buffers.map { _ in allocateDescriptor() }
        for (i, buffer) in buffers.enumerated() {
            let last = i == buffers.count - 1
            writeDescriptor(indices[i], address: buffer.0, length: UInt32(buffer.1),
                            flags: flags | (last ? 0 : Self.next), next: last ? 0 : UInt16(indices[i + 1]))
        }
        return UInt16(indices[0])
    }

    /// The first `length` bytes the device wrote into a receive chain, across its buffers.
    public func receivedBytes(head: UInt16, length: Int) -> [UInt8] {
        var result: [UInt8] = []
        for buffer in receiveBuffers[head] ?? [] where result.count < length {
            result += fixture.read(at: buffer.address, count: min(buffer.length, length - result.count))
        }
        return result
    }
}
