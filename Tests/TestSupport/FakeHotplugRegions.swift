import VhostSystem
import Virtio

/// Memory a fake front-end plugs in one region at a time (ADD_MEM_REG, as virtio-mem and
/// DIMM hotplug do): `count` one-page regions of one memfd, region i at guest-physical
/// 1 GiB + i MiB and front-end virtual 0x7e00_0000_0000 + i MiB (clear of
/// `FakeFrontendMemory`'s defaults), file offset i pages. Each ADD_MEM_REG carries `fd`.
public struct FakeHotplugRegions {
    public static let regionSize: UInt64 = 0x1000
    public let count: Int
    public let fd: FileDescriptor

    public init(count: Int = GuestMemory.maxMemorySlots + 1, name: String = "fake-hotplug") throws {
        self.count = count
        fd = try MemFD.create(name: name, size: count * Int(Self.regionSize))
    }

    public func descriptor(_ i: Int) -> GuestMemoryRegionDescriptor {
        GuestMemoryRegionDescriptor(guestPhysicalAddress: 0x4000_0000 + UInt64(i) << 20, size: Self.regionSize,
                                    userspaceAddress: 0x7e00_0000_0000 + UInt64(i) << 20, mmapOffset: UInt64(i) * Self.regionSize)
    }

    /// ADD_MEM_REG's payload for region i (REM_MEM_REG's too).
    public func payload(_ i: Int) -> [UInt8] { FakeFrontend.singleRegion(descriptor(i)) }
}
