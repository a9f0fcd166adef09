import CVhostShims
import Virtio

/// The guest driver side of one split ring (VIRTIO 1.1 2.7) in a `GuestMemoryFixture`: writes
/// descriptors and avail entries as a virtio driver would, and reads used entries back.
/// Descriptors are handed out round-robin. Hostile tests and the hostile tool use
/// `writeDescriptor`, `writeAvailSlot`, `setAvailIndex` and `publish(heads:)` to build any ring
/// state; avail.idx is read from guest memory, so another writer (a scribbling guest thread,
/// memory wiped between cases) is seen.
public final class SplitGuestDriverRing: GuestDriverRing, @unchecked Sendable {  // test-only
    /// Guest-physical addresses of the three tables.
    public let descriptorTableAddress: UInt64
    public let availAddress: UInt64
    public let usedAddress: UInt64

    public private(set) var lastSeenUsedIndex: UInt16 = 0
    private var nextDescriptor = 0

    /// Places the ring at `ringAddress` (descriptor table, then avail ring, then the used
    /// ring 64-byte aligned) and zeroes it.
    public convenience init(fixture: GuestMemoryFixture, size: Int, ringAddress: UInt64 = 0, dataAddress: UInt64 = 0x10000,
                            dataSize: UInt64 = 0x40000) throws {
        let availAddress = ringAddress + 16 * UInt64(size)
        let usedAddress = (availAddress + 6 + 2 * UInt64(size) + 63) & ~63
        self.init(fixture: fixture, size: size, descriptorTableAddress: ringAddress, availAddress: availAddress,
                  usedAddress: usedAddress, dataAddress: dataAddress, dataSize: dataSize)
        fixture.fill(0, at: ringAddress, count: Int(usedAddress - ringAddress) + 6 + 8 * size)
    }

    /// A ring whose three tables are where the caller says (guest-physical), over memory as it
    /// is (nothing is zeroed). `dataSize` 0: the caller places every buffer itself.
    public init(fixture: GuestMemoryFixture, size: Int, descriptorTableAddress: UInt64, availAddress: UInt64, usedAddress: UInt64,
                dataAddress: UInt64 = 0, dataSize: UInt64 = 0) {
        self.descriptorTableAddress = descriptorTableAddress
        self.availAddress = availAddress
        self.usedAddress = usedAddress
        super.init(fixture: fixture, size: size, dataAddress: dataAddress, dataSize: dataSize)
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

    /// avail.idx as guest memory holds it.
    public var availIndex: UInt16 { UInt16(littleEndian: fixture.pointer(guestPhysical: availAddress + 2).load(as: UInt16.self)) }

    /// Sets avail.idx to anything (release, as a driver publishes).
    public func setAvailIndex(_ index: UInt16) {
        vhost_shims_store_release_u16(fixture.pointer(guestPhysical: availAddress + 2), index.littleEndian)
    }

    /// Puts `head` in the next avail slot and publishes it.
    public func publish(head: UInt16) {
        publish(heads: [head])
    }

    /// Puts `heads` in the next avail slots and publishes them with one avail.idx store.
    public func publish(heads: [UInt16]) {
        var index = availIndex
        for head in heads {
            writeAvailSlot(index, head: head)
            index &+= 1
        }
        setAvailIndex(index)
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

    /// used.flags (VRING_USED_F_NO_NOTIFY is bit 0); the device writes it, tests may too.
    public var usedFlags: UInt16 {
        get { fixture.pointer(guestPhysical: usedAddress).load(as: UInt16.self) }
        set { fixture.pointer(guestPhysical: usedAddress).storeBytes(of: newValue, as: UInt16.self) }
    }

    public var usedIndex: UInt16 { vhost_shims_load_acquire_u16(fixture.pointer(guestPhysical: usedAddress + 2)) }

    /// Writes used.idx as a device would have (where a test wants the device to resume).
    public func setUsedIndex(_ index: UInt16) {
        fixture.pointer(guestPhysical: usedAddress + 2).storeBytes(of: index.littleEndian, as: UInt16.self)
    }

    /// avail_event (EVENT_IDX): the device wants a kick when avail.idx passes this.
    public var availEvent: UInt16 { fixture.pointer(guestPhysical: usedAddress + 4 + 8 * UInt64(size)).load(as: UInt16.self) }

    /// Used entries (le32 id, le32 len) published since the last call.
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

    /// The used entries as either layout gives them: a split ring's id is the chain's head.
    override public func takeUsed() -> [(id: UInt16, length: UInt32)] {
        takeUsedEntries().map { (UInt16(truncatingIfNeeded: $0.id), $0.length) }
    }

    // MARK: Allocation

    public func allocateDescriptor() -> Int {
        defer { nextDescriptor = (nextDescriptor + 1) % size }
        return nextDescriptor
    }

    // MARK: Driver operations

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

    /// Writes the chain and publishes its head.
    override public func makeAvailable(_ buffers: [(UInt64, Int)], writable: Bool, indirect: Bool) -> UInt16 {
        let head = postChain(buffers, writable: writable, indirect: indirect)
        publish(head: head)
        return head
    }
}
