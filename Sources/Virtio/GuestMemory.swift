/// One row of the hot-path translation table: plain values, so translating an address
/// touches no Swift array and no class reference (no ARC, no bounds-check traps).
@usableFromInline
struct GuestMemoryTranslationEntry {
    @usableFromInline let guestPhysicalStart: UInt64
    @usableFromInline let frontendVirtualStart: UInt64
    @usableFromInline let size: UInt64
    @usableFromInline let host: UnsafeMutableRawPointer

    @usableFromInline
    init(guestPhysicalStart: UInt64, frontendVirtualStart: UInt64, size: UInt64, host: UnsafeMutableRawPointer) {
        self.guestPhysicalStart = guestPhysicalStart
        self.frontendVirtualStart = frontendVirtualStart
        self.size = size
        self.host = host
    }
}

/// A borrowed view of a translation table, copied into each virtqueue so the per-packet
/// path needs no reference to the `GuestMemory` object. Valid while the `GuestMemory` lives.
@usableFromInline
struct GuestMemoryTranslator {
    @usableFromInline let entries: UnsafePointer<GuestMemoryTranslationEntry>
    @usableFromInline let count: Int

    @usableFromInline
    init(entries: UnsafePointer<GuestMemoryTranslationEntry>, count: Int) {
        self.entries = entries
        self.count = count
    }

    /// Tables up to this many regions (SET_MEM_TABLE's 8; QEMU usually sends 1 to 3) are
    /// scanned, as before; larger ones (memory hotplug, up to 509) are searched.
    @usableFromInline static let linearScanLimit = 8

    /// The host address of [address, address + length) if that whole range lies inside one
    /// region; nil for length 0, for any range that leaves its region, or on overflow.
    @inlinable @inline(__always)
    func guestPhysical(_ address: UInt64, length: UInt64) -> UnsafeMutableRawPointer? {
        if count <= Self.linearScanLimit { return translate(address, length: length) { $0.guestPhysicalStart } }
        return searchGuestPhysical(address, length: length)
    }

    /// `guestPhysical` for a large table: a binary search over the entries, which
    /// `GuestMemory` sorts by guest-physical start. The last region that starts at or before
    /// `address` is the only one that can hold it (regions never overlap): 9 steps for 509
    /// regions instead of a scan of up to 509 per descriptor.
    @inlinable
    func searchGuestPhysical(_ address: UInt64, length: UInt64) -> UnsafeMutableRawPointer? {
        guard length != 0 else { return nil }
        // Entries before `low` start at or before `address`; entries from `high` on, after it.
        var low = 0
        var high = count
        while low < high {
            let middle = (low &+ high) &>> 1
            // Safe: middle < high <= count, the number of entries the table was allocated with.
            if entries[middle].guestPhysicalStart <= address { low = middle &+ 1 } else { high = middle }
        }
        guard low > 0 else { return nil }
        // Safe: 0 <= low - 1 < count.
        let entry = entries[low &- 1]
        // No wrap: start <= address. No overflow below: offset < size.
        let offset = address &- entry.guestPhysicalStart
        guard offset < entry.size, length <= entry.size &- offset else { return nil }
        // Safe: offset + length <= size, which lies inside the region's mapping.
        return entry.host + Int(truncatingIfNeeded: offset)
    }

    /// Same as `guestPhysical`, over the front-end's virtual addresses (SET_VRING_ADDR).
    @inlinable @inline(__always)
    func frontendVirtual(_ address: UInt64, length: UInt64) -> UnsafeMutableRawPointer? {
        translate(address, length: length) { $0.frontendVirtualStart }
    }

    /// The lookup of both address spaces; `start` picks a region's start in the one asked for
    /// (a closure that does not escape and is inlined away: no allocation, no call).
    @inlinable @inline(__always)
    func translate(_ address: UInt64, length: UInt64, start: (GuestMemoryTranslationEntry) -> UInt64) -> UnsafeMutableRawPointer? {
        guard length != 0 else { return nil }
        var i = 0
        while i < count {
            // Safe: i < count, the number of entries the table was allocated with.
            let entry = entries[i]
            let regionStart = start(entry)
            // Wrapping subtraction: if address < start the offset is huge and fails `< size`.
            let offset = address &- regionStart
            if address >= regionStart && offset < entry.size {
                // No overflow: offset < size, so size - offset > 0. Regions never overlap,
                // so no other region can hold the range.
                guard length <= entry.size &- offset else { return nil }
                // Safe: offset + length <= size, which lies inside the region's mapping.
                return entry.host + Int(truncatingIfNeeded: offset)
            }
            i &+= 1
        }
        return nil
    }
}

/// The two ways a front-end names guest memory: guest-physical addresses (descriptors, the
/// dirty log) and its own virtual addresses (SET_VRING_ADDR's ring addresses).
public enum GuestAddressSpace: Sendable {
    case guestPhysical, frontendVirtual
}

/// The guest's memory as a set of mapped regions, immutable after init. A new memory table
/// (SET_MEM_TABLE, ADD/REM_MEM_REG) builds a new `GuestMemory`; the old one is released only
/// after every poll thread has stopped using it (see docs/ARCHITECTURE.md, Threads).
public final class GuestMemory: @unchecked Sendable {  // immutable after init
    /// The most regions one SET_MEM_TABLE may carry (vhost-user VHOST_MEMORY_BASELINE_NREGIONS).
    public static let maxRegions = 8
    /// The most slots we accept with CONFIGURE_MEM_SLOTS (ADD_MEM_REG); QEMU's KVM limit.
    public static let maxMemorySlots = 509

    public let regions: [GuestMemoryRegion]
    /// The sum of all region sizes.
    public let totalSize: UInt64
    /// The last guest-physical byte of any region (0 without regions). The dirty log must
    /// cover pages up to here: (highestGuestPhysicalAddress / 4096) / 8 + 1 bytes.
    public let highestGuestPhysicalAddress: UInt64

    @usableFromInline let table: UnsafeMutablePointer<GuestMemoryTranslationEntry>
    @usableFromInline let translator: GuestMemoryTranslator

    /// Rejects more than `maxRegions` regions and regions whose guest-physical or front-end
    /// virtual ranges overlap (a translation must have exactly one answer).
    public init(regions: [GuestMemoryRegion], maxRegions: Int = GuestMemory.maxMemorySlots) throws(GuestMemoryError) {
        guard regions.count <= maxRegions else { throw .tooManyRegions }
        let descriptors = regions.map(\.descriptor)
        guard !Self.overlap(descriptors.map { ($0.guestPhysicalAddress, $0.size) }),
              !Self.overlap(descriptors.map { ($0.userspaceAddress, $0.size) }) else { throw .overlappingRegions }
        self.regions = regions
        var total: UInt64 = 0
        var highest: UInt64 = 0
        table = .allocate(capacity: max(1, regions.count))
        // Sorted by guest-physical start, which a large table's search needs.
        for (i, region) in regions.sorted(by: { $0.descriptor.guestPhysicalAddress < $1.descriptor.guestPhysicalAddress }).enumerated() {
            let d = region.descriptor
            total &+= d.size
            highest = max(highest, d.guestPhysicalAddress + d.size - 1)
            // Safe: i < regions.count <= the capacity allocated above.
            (table + i).initialize(to: GuestMemoryTranslationEntry(
                guestPhysicalStart: d.guestPhysicalAddress, frontendVirtualStart: d.userspaceAddress,
                size: d.size, host: region.hostAddress))
        }
        totalSize = total
        highestGuestPhysicalAddress = highest
        translator = GuestMemoryTranslator(entries: UnsafePointer(table), count: regions.count)
    }

    /// Whether any two of the ranges overlap: sorted by start, only neighbours can (509
    /// regions are 508 comparisons, not 129,286 pairs, on every ADD_MEM_REG).
    private static func overlap(_ ranges: [(start: UInt64, size: UInt64)]) -> Bool {
        let sorted = ranges.sorted { $0.start < $1.start }
        // End addresses cannot wrap: GuestMemoryRegion.map checked start + size.
        return zip(sorted, sorted.dropFirst()).contains { $0.start + $0.size > $1.start }
    }

    /// No regions: a device before its first SET_MEM_TABLE. Every translation fails.
    public convenience init() {
        // Safe: an empty list has no overlaps and is within every limit.
        try! self.init(regions: [])
    }

    deinit {
        table.deinitialize(count: regions.count)
        table.deallocate()
    }

    /// The descriptors of all regions, in order.
    public var regionDescriptors: [GuestMemoryRegionDescriptor] { regions.map(\.descriptor) }

    /// The host address of guest-physical [address, address + length), or nil unless that
    /// whole range lies inside one region (length 0 is nil; overflow is nil).
    @inlinable
    public func translateGuestPhysical(_ address: UInt64, length: UInt64) -> UnsafeMutableRawPointer? {
        translator.guestPhysical(address, length: length)
    }

    /// Same over the front-end's virtual addresses (userspace_addr): ring addresses from
    /// SET_VRING_ADDR are given this way.
    @inlinable
    public func translateFrontendVirtual(_ address: UInt64, length: UInt64) -> UnsafeMutableRawPointer? {
        translator.frontendVirtual(address, length: length)
    }

    /// `translateGuestPhysical` or `translateFrontendVirtual`, as `space` says.
    public func translate(_ address: UInt64, length: UInt64, in space: GuestAddressSpace) -> UnsafeMutableRawPointer? {
        switch space {
        case .guestPhysical: translator.guestPhysical(address, length: length)
        case .frontendVirtual: translator.frontendVirtual(address, length: length)
        }
    }

    /// The guest-physical address of a front-end virtual address, for the used-ring log when
    /// the front-end did not give log_guest_addr; nil when unmapped.
    public func guestPhysicalAddress(ofFrontendVirtual address: UInt64) -> UInt64? {
        for region in regions {
            let d = region.descriptor
            if address >= d.userspaceAddress && address - d.userspaceAddress < d.size {
                return d.guestPhysicalAddress + (address - d.userspaceAddress)
            }
        }
        return nil
    }
}
