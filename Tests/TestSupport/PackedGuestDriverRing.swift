import CVhostShims
import Virtio

/// The guest driver side of a packed virtqueue (VIRTIO 1.1 2.8) in a `GuestMemoryFixture`: the
/// descriptor ring, then the driver and device event suppression areas. Buffer ids are handed
/// out round-robin. Hostile tests use `writeDescriptor` and `postChain(id:)` to build any ring
/// state.
public final class PackedGuestDriverRing: GuestDriverRing, @unchecked Sendable {  // test-only
    public static let availFlag: UInt16 = 1 << 7
    public static let usedFlag: UInt16 = 1 << 15
    public static let eventEnable: UInt16 = 0
    public static let eventDisable: UInt16 = 1
    public static let eventDescriptor: UInt16 = 2

    public let descriptorRingAddress: UInt64
    public let driverEventAddress: UInt64
    public let deviceEventAddress: UInt64

    /// The driver's next slot to fill and its wrap counter (starts at 1, 2.8.1).
    public private(set) var nextAvail = 0
    public private(set) var availWrap = true
    /// The next slot where a used descriptor is expected.
    public private(set) var nextUsed = 0
    public private(set) var usedWrap = true
    private var nextID: UInt16 = 0
    /// Slots each posted buffer id took, to move past its used descriptor.
    public private(set) var slotsOfID: [UInt16: Int] = [:]

    /// Places the descriptor ring at `ringAddress`, the driver and device event areas right
    /// after it, and zeroes them.
    public init(fixture: GuestMemoryFixture, size: Int, ringAddress: UInt64 = 0, dataAddress: UInt64 = 0x10000,
                dataSize: UInt64 = 0x40000) throws {
        descriptorRingAddress = ringAddress
        driverEventAddress = ringAddress + 16 * UInt64(size)
        deviceEventAddress = driverEventAddress + 4
        super.init(fixture: fixture, size: size, dataAddress: dataAddress, dataSize: dataSize)
        fixture.fill(0, at: ringAddress, count: 16 * size + 8)
    }

    /// The ring's layout, from front-end virtual addresses as SET_VRING_ADDR gives them.
    public func layout(logRing: Bool = false) throws -> PackedVirtqueueLayout {
        try PackedVirtqueueLayout.map(size: size,
                                      descriptorAddress: fixture.frontendVirtualAddress(ofGuestPhysical: descriptorRingAddress),
                                      driverEventAddress: fixture.frontendVirtualAddress(ofGuestPhysical: driverEventAddress),
                                      deviceEventAddress: fixture.frontendVirtualAddress(ofGuestPhysical: deviceEventAddress),
                                      logRing: logRing, memory: fixture.memory)
    }

    // MARK: Raw access

    /// AVAIL/USED bits that make a descriptor available under wrap counter `wrap`.
    public static func availableBits(wrap: Bool) -> UInt16 { wrap ? availFlag : usedFlag }

    /// Writes a descriptor's address, length and id, then its flags (release, as a driver publishes).
    public func writeDescriptor(_ slot: Int, address: UInt64, length: UInt32, id: UInt16, flags: UInt16) {
        writeDescriptor(at: descriptorRingAddress + 16 * UInt64(slot), address: address, length: length, id: id, flags: flags)
    }

    /// Writes one 16-byte packed descriptor anywhere (an indirect table entry).
    public func writeDescriptor(at address: UInt64, address bufferAddress: UInt64, length: UInt32, id: UInt16, flags: UInt16) {
        let p = fixture.pointer(guestPhysical: address)
        p.storeBytes(of: bufferAddress.littleEndian, toByteOffset: 0, as: UInt64.self)
        p.storeBytes(of: length.littleEndian, toByteOffset: 8, as: UInt32.self)
        p.storeBytes(of: id.littleEndian, toByteOffset: 12, as: UInt16.self)
        vhost_shims_store_release_u16(p + 14, flags.littleEndian)
    }

    public func readDescriptor(_ slot: Int) -> (address: UInt64, length: UInt32, id: UInt16, flags: UInt16) {
        let p = fixture.pointer(guestPhysical: descriptorRingAddress + 16 * UInt64(slot))
        return (p.load(fromByteOffset: 0, as: UInt64.self), p.load(fromByteOffset: 8, as: UInt32.self),
                p.load(fromByteOffset: 12, as: UInt16.self), vhost_shims_load_acquire_u16(p + 14))
    }

    private func advanceAvail(by slots: Int = 1) {
        nextAvail += slots
        while nextAvail >= size { nextAvail -= size; availWrap.toggle() }
    }

    /// Driver event suppression (we write it): when the device should interrupt us.
    public var driverEventFlags: UInt16 {
        get { fixture.pointer(guestPhysical: driverEventAddress + 2).load(as: UInt16.self) }
        set { fixture.pointer(guestPhysical: driverEventAddress + 2).storeBytes(of: newValue, as: UInt16.self) }
    }
    public var driverEventOffWrap: UInt16 {
        get { fixture.pointer(guestPhysical: driverEventAddress).load(as: UInt16.self) }
        set { fixture.pointer(guestPhysical: driverEventAddress).storeBytes(of: newValue, as: UInt16.self) }
    }
    /// Device event suppression (the device writes it): when it wants a kick.
    public var deviceEventFlags: UInt16 { fixture.pointer(guestPhysical: deviceEventAddress + 2).load(as: UInt16.self) }
    public var deviceEventOffWrap: UInt16 { fixture.pointer(guestPhysical: deviceEventAddress).load(as: UInt16.self) }

    // MARK: Allocation

    public func allocateID() -> UInt16 {
        defer { nextID = UInt16((Int(nextID) + 1) % size) }
        return nextID
    }

    // MARK: Driver operations

    /// Makes a buffer available: its descriptors in consecutive slots (or one INDIRECT slot
    /// pointing at a table), every descriptor carrying `id` (as Linux does), the first
    /// descriptor's flags written last. Returns the id.
    @discardableResult
    public func postChain(_ buffers: [(UInt64, Int)], writable: Bool, indirect: Bool = false, id: UInt16? = nil) -> UInt16 {
        let id = id ?? allocateID()
        let flags: UInt16 = writable ? Self.write : 0
        var descriptors: [(UInt64, UInt32, UInt16)] = []
        if indirect {
            let table = allocateBuffer(16 * buffers.count)
            for (i, buffer) in buffers.enumerated() {
                writeDescriptor(at: table + 16 * UInt64(i), address: buffer.0, length: UInt32(buffer.1), id: 0, flags: flags)
            }
            descriptors = [(table, UInt32(16 * buffers.count), Self.indirect)]
        } else {
            descriptors = buffers.enumerated().map { i, buffer in
                (buffer.0, UInt32(buffer.1), flags | (i == buffers.count - 1 ? 0 : Self.next))
            }
        }
        let headSlot = nextAvail
        let headFlags = descriptors[0].2 | Self.availableBits(wrap: availWrap)
        let head = fixture.pointer(guestPhysical: descriptorRingAddress + 16 * UInt64(headSlot))
        head.storeBytes(of: descriptors[0].0.littleEndian, toByteOffset: 0, as: UInt64.self)
        head.storeBytes(of: descriptors[0].1.littleEndian, toByteOffset: 8, as: UInt32.self)
        head.storeBytes(of: id.littleEndian, toByteOffset: 12, as: UInt16.self)
        advanceAvail()
        for descriptor in descriptors.dropFirst() {
            writeDescriptor(nextAvail, address: descriptor.0, length: descriptor.1, id: id,
                            flags: descriptor.2 | Self.availableBits(wrap: availWrap))
            advanceAvail()
        }
        vhost_shims_store_release_u16(head + 14, headFlags.littleEndian)
        slotsOfID[id] = descriptors.count
        return id
    }

    /// Makes the chain available under a fresh id.
    override public func makeAvailable(_ buffers: [(UInt64, Int)], writable: Bool, indirect: Bool) -> UInt16 {
        postChain(buffers, writable: writable, indirect: indirect)
    }

    /// Used descriptors the device published since the last call, in ring order.
    override public func takeUsed() -> [(id: UInt16, length: UInt32)] {
        var result: [(id: UInt16, length: UInt32)] = []
        while result.count < size {
            let d = readDescriptor(nextUsed)
            let avail = d.flags & Self.availFlag != 0
            let used = d.flags & Self.usedFlag != 0
            guard avail == usedWrap && used == usedWrap else { break }
            result.append((d.id, d.length))
            nextUsed += slotsOfID[d.id] ?? 1
            while nextUsed >= size { nextUsed -= size; usedWrap.toggle() }
        }
        return result
    }
}
