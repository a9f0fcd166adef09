/// Why a split ring's addresses (SET_VRING_NUM, SET_VRING_ADDR) were refused.
public enum VirtqueueError: Error, Equatable {
    case invalidSize
    case unmappedDescriptorTable
    case unmappedAvailRing
    case unmappedUsedRing
    case misaligned
    /// log_guest_addr + used ring size wraps 2^64.
    case invalidLogAddress
}

/// Where a split virtqueue's three tables live in this process (VIRTIO 1.1 section 2.7).
/// Each table is checked to lie entirely inside one region of the `GuestMemory` it was
/// mapped with, and is valid only as long as that memory.
public struct VirtqueueLayout: @unchecked Sendable {  // plain pointers into memory owned by GuestMemory
    public let size: UInt16
    /// 16 bytes per entry: addr u64, len u32, flags u16, next u16.
    public let descriptorTable: UnsafeMutableRawPointer
    /// flags u16, idx u16, ring[size] u16, used_event u16.
    public let availRing: UnsafeMutableRawPointer
    /// flags u16, idx u16, ring[size] {id u32, len u32}, avail_event u16.
    public let usedRing: UnsafeMutableRawPointer
    /// The used ring's guest-physical address for dirty logging (SET_VRING_ADDR with
    /// VHOST_VRING_F_LOG); nil when the front-end did not ask for used-ring logging.
    public let usedLogGuestAddress: UInt64?

    public static let maxSize = 32768

    @inlinable public static func descriptorTableSize(_ size: Int) -> UInt64 { 16 * UInt64(size) }
    /// Includes used_event.
    @inlinable public static func availRingSize(_ size: Int) -> UInt64 { 6 + 2 * UInt64(size) }
    /// Includes avail_event.
    @inlinable public static func usedRingSize(_ size: Int) -> UInt64 { 6 + 8 * UInt64(size) }

    /// Checks and translates ring addresses given as front-end virtual addresses (see
    /// `mapTables` for the rules); a log address must leave room for the used ring.
    public static func map(size: Int, descriptorAddress: UInt64, availAddress: UInt64, usedAddress: UInt64,
                           logGuestAddress: UInt64?, memory: GuestMemory) throws(VirtqueueError) -> VirtqueueLayout {
        let (descriptors, avail, used) = try mapTables(size: size, descriptorAddress: descriptorAddress, availAddress: availAddress,
                                                       usedAddress: usedAddress, in: .frontendVirtual, memory: memory)
        if let log = logGuestAddress {
            guard !log.addingReportingOverflow(usedRingSize(size)).overflow else { throw .invalidLogAddress }
        }
        return VirtqueueLayout(size: UInt16(size), descriptorTable: descriptors, availRing: avail, usedRing: used,
                               usedLogGuestAddress: logGuestAddress)
    }

    /// Translates ring addresses given as guest-physical addresses (front-ends that set
    /// ACCESS_PLATFORM-free addresses this way, and tests).
    public static func map(size: Int, guestPhysicalDescriptorAddress: UInt64, availAddress: UInt64, usedAddress: UInt64,
                           memory: GuestMemory, logUsedRing: Bool) throws(VirtqueueError) -> VirtqueueLayout {
        let (descriptors, avail, used) = try mapTables(size: size, descriptorAddress: guestPhysicalDescriptorAddress,
                                                       availAddress: availAddress, usedAddress: usedAddress, in: .guestPhysical,
                                                       memory: memory)
        return VirtqueueLayout(size: UInt16(size), descriptorTable: descriptors, availRing: avail, usedRing: used,
                               usedLogGuestAddress: logUsedRing ? usedAddress : nil)
    }

    /// What both `map`s check: `size` a power of two in 1...32768; the descriptor table 16-byte,
    /// the avail ring 2-byte and the used ring 4-byte aligned (VIRTIO 1.1 2.7), both as
    /// addresses and as host pointers (the index fields are accessed atomically); each table
    /// inside one region.
    private static func mapTables(size: Int, descriptorAddress: UInt64, availAddress: UInt64, usedAddress: UInt64,
                                  in space: GuestAddressSpace, memory: GuestMemory) throws(VirtqueueError)
        -> (UnsafeMutableRawPointer, UnsafeMutableRawPointer, UnsafeMutableRawPointer) {
        guard size >= 1, size <= maxSize, size & (size - 1) == 0 else { throw .invalidSize }
        guard descriptorAddress % 16 == 0, availAddress % 2 == 0, usedAddress % 4 == 0 else { throw .misaligned }
        guard let descriptors = memory.translate(descriptorAddress, length: descriptorTableSize(size), in: space) else {
            throw .unmappedDescriptorTable
        }
        guard let avail = memory.translate(availAddress, length: availRingSize(size), in: space) else { throw .unmappedAvailRing }
        guard let used = memory.translate(usedAddress, length: usedRingSize(size), in: space) else { throw .unmappedUsedRing }
        guard UInt(bitPattern: descriptors) % 16 == 0, UInt(bitPattern: avail) % 2 == 0, UInt(bitPattern: used) % 4 == 0 else {
            throw .misaligned
        }
        return (descriptors, avail, used)
    }
}
