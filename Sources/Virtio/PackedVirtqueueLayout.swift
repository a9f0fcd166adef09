/// Where a packed virtqueue's three areas live in this process (VIRTIO 1.1 section 2.8):
/// the descriptor ring (16 bytes per entry: addr u64, len u32, id u16, flags u16), the driver
/// event suppression area (written by the driver: when to interrupt it) and the device event
/// suppression area (written by us: when to kick us); each event area is off_wrap u16, flags u16.
/// vhost-user passes them in SET_VRING_ADDR's desc, avail and used fields. Each area is
/// checked to lie inside one region of the `GuestMemory` it was mapped with.
public struct PackedVirtqueueLayout: @unchecked Sendable {  // plain pointers into memory owned by GuestMemory
    public let size: UInt16
    public let descriptorRing: UnsafeMutableRawPointer
    public let driverEvent: UnsafeMutableRawPointer
    public let deviceEvent: UnsafeMutableRawPointer
    /// Guest-physical addresses of the descriptor ring and the device event area, for dirty
    /// logging of our writes there (used descriptors, event suppression); nil when the
    /// front-end did not ask for ring logging (VHOST_VRING_F_LOG).
    public let descriptorLogGuestAddress: UInt64?
    public let deviceEventLogGuestAddress: UInt64?

    /// Packed rings need not be a power of two (2.8.10.1 is only bounded by 2^15).
    public static let maxSize = 32768
    public static let eventAreaSize: UInt64 = 4

    @inlinable public static func descriptorRingSize(_ size: Int) -> UInt64 { 16 * UInt64(size) }

    /// Checks and translates addresses given as front-end virtual addresses. The descriptor
    /// ring must be 16-byte aligned, the event areas 4-byte aligned (2.8.10.1), as addresses
    /// and as host pointers. With `logRing`, the guest-physical addresses for the dirty log
    /// are found through the memory table (QEMU's log_guest_addr names only one area).
    public static func map(size: Int, descriptorAddress: UInt64, driverEventAddress: UInt64, deviceEventAddress: UInt64,
                           logRing: Bool, memory: GuestMemory) throws(VirtqueueError) -> PackedVirtqueueLayout {
        let (descriptors, driver, device) = try mapAreas(size: size, descriptorAddress: descriptorAddress,
                                                         driverEventAddress: driverEventAddress, deviceEventAddress: deviceEventAddress,
                                                         in: .frontendVirtual, memory: memory)
        var descriptorLog: UInt64? = nil
        var deviceLog: UInt64? = nil
        if logRing {
            // Both translated above, so both have a guest-physical address.
            descriptorLog = memory.guestPhysicalAddress(ofFrontendVirtual: descriptorAddress)
            deviceLog = memory.guestPhysicalAddress(ofFrontendVirtual: deviceEventAddress)
        }
        return PackedVirtqueueLayout(size: UInt16(size), descriptorRing: descriptors, driverEvent: driver, deviceEvent: device,
                                     descriptorLogGuestAddress: descriptorLog, deviceEventLogGuestAddress: deviceLog)
    }

    /// Same with guest-physical addresses (tests, and front-ends that give them this way).
    public static func map(size: Int, guestPhysicalDescriptorAddress: UInt64, driverEventAddress: UInt64,
                           deviceEventAddress: UInt64, memory: GuestMemory, logRing: Bool) throws(VirtqueueError) -> PackedVirtqueueLayout {
        let (descriptors, driver, device) = try mapAreas(size: size, descriptorAddress: guestPhysicalDescriptorAddress,
                                                         driverEventAddress: driverEventAddress, deviceEventAddress: deviceEventAddress,
                                                         in: .guestPhysical, memory: memory)
        return PackedVirtqueueLayout(size: UInt16(size), descriptorRing: descriptors, driverEvent: driver, deviceEvent: device,
                                     descriptorLogGuestAddress: logRing ? guestPhysicalDescriptorAddress : nil,
                                     deviceEventLogGuestAddress: logRing ? deviceEventAddress : nil)
    }

    /// What both `map`s check: the size, the descriptor ring 16-byte and the event areas
    /// 4-byte aligned (2.8.10.1), as addresses and as host pointers; each area inside one region.
    private static func mapAreas(size: Int, descriptorAddress: UInt64, driverEventAddress: UInt64, deviceEventAddress: UInt64,
                                 in space: GuestAddressSpace, memory: GuestMemory) throws(VirtqueueError)
        -> (UnsafeMutableRawPointer, UnsafeMutableRawPointer, UnsafeMutableRawPointer) {
        guard size >= 1, size <= maxSize else { throw .invalidSize }
        guard descriptorAddress % 16 == 0, driverEventAddress % 4 == 0, deviceEventAddress % 4 == 0 else { throw .misaligned }
        guard let descriptors = memory.translate(descriptorAddress, length: descriptorRingSize(size), in: space) else {
            throw .unmappedDescriptorTable
        }
        guard let driver = memory.translate(driverEventAddress, length: eventAreaSize, in: space) else { throw .unmappedAvailRing }
        guard let device = memory.translate(deviceEventAddress, length: eventAreaSize, in: space) else { throw .unmappedUsedRing }
        guard UInt(bitPattern: descriptors) % 16 == 0, UInt(bitPattern: driver) % 4 == 0, UInt(bitPattern: device) % 4 == 0 else {
            throw .misaligned
        }
        return (descriptors, driver, device)
    }
}
