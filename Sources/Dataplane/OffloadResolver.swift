import Virtio
import VhostSystem

/// Per poll thread: makes frames whose offload requests a destination did not negotiate
/// into frames it can take. A partial checksum (NEEDS_CSUM) is completed; a GSO
/// super-frame is cut into segments (UFO: IP fragments) with complete checksums; DATA_VALID is cleared for a
/// destination without GUEST_CSUM. Frames the destination accepts pass untouched, header
/// and all. Resolved frames are written to the resolver's own buffers, never in place: a
/// flooded frame's data is shared with destinations that take it as it is.
/// Public only for the fuzz target (Fuzz/FuzzVirtqueue feeds it hostile frames).
public final class OffloadResolver {
    /// The GUEST_* features a destination can have: when it has all of them (and the
    /// burst has no other GSO type) nothing needs resolving.
    public static let everyGuestOffload: UInt64 = VirtioNetFeature.guestCsum.mask | VirtioNetFeature.guestTso4.mask
        | VirtioNetFeature.guestTso6.mask | VirtioNetFeature.guestEcn.mask | VirtioNetFeature.guestUfo.mask
    static let slotCount = 64
    /// Room for the largest frame plus an IPv6 fragment header.
    static let slotCapacity = PacketBufferPool.bufferCapacity + 64
    /// A super-frame that would make more segments than this (a tiny gso_size) is dropped
    /// as malformed: one hostile frame must not hold a poll thread for long. 64 KiB at
    /// Linux's smallest MSS (88) is 745 segments.
    static let maxSegmentsPerFrame = 1024

    /// What one resolved transmit did, for the destination port's counters.
    public struct Totals {
        public var offered = 0
        public var delivered = 0
        public var checksumsCompleted: UInt64 = 0
        public var framesSegmented: UInt64 = 0
        public var segments: UInt64 = 0
        public var dropsMalformed: UInt64 = 0

        public init() {}
    }

    private let mapping: MemoryMapping
    // Unsafe: `slotCount` entries each, for the resolver's lifetime (one poll thread).
    private let batch: UnsafeMutablePointer<PacketBuffer>
    private let slots: UnsafeMutableRawPointer
    /// IPv6 fragment identification for the next UFO datagram.
    private var nextFragmentIdentification: UInt32 = 1

    public init() throws(SystemError) {
        mapping = try MemoryMapping(anonymousLength: Self.slotCount * Self.slotCapacity)
        slots = mapping.base
        batch = .allocate(capacity: Self.slotCount)
        batch.initialize(repeating: PacketBuffer(data: mapping.base, capacity: 0), count: Self.slotCount)
    }

    deinit {
        batch.deinitialize(count: Self.slotCount)
        batch.deallocate()
    }

    /// Resolves `count` frames for a destination that accepts the GUEST_* offloads in
    /// `accepted` and hands them, in order, to `send` in batches of at most `slotCount`
    /// (`send` returns how many it delivered). Drops are counted in `totals`.
    public func resolve(_ packets: UnsafePointer<PacketBuffer>, count: Int, accepted: UInt64, totals: inout Totals,
                 send: (UnsafeMutablePointer<PacketBuffer>, Int) -> Int) {
        var pending = 0
        var slotsUsed = 0
        func flush() {
            guard pending > 0 else { return }
            totals.offered &+= pending
            totals.delivered &+= send(batch, pending)
            pending = 0
            slotsUsed = 0
        }
        for i in 0..<count {
            // Safe: i < count, the caller's count. A copy: the caller's entry is not changed.
            var packet = packets[i]
            if packet.header.flags & VirtioNetHeader.flagDataValid != 0 && accepted & VirtioNetFeature.guestCsum.mask == 0 {
                packet.header.flags &= ~VirtioNetHeader.flagDataValid
            }
            if packet.header.isAcceptable(toReceiverWith: accepted) {
                if pending == Self.slotCount { flush() }
                batch[pending] = packet
                pending &+= 1
                continue
            }
            if packet.header.gsoType == VirtioNetHeader.gsoNone {
                // A partial checksum only (ECN without GSO has no required-feature set and
                // never gets here: requiredReceiveFeatures is nil only for bad GSO types).
                let start = Int(packet.header.checksumStart)
                let offset = Int(packet.header.checksumOffset)
                guard packet.header.flags & VirtioNetHeader.flagNeedsChecksum != 0,
                      start &+ offset &+ 2 <= packet.length, packet.length <= Self.slotCapacity else {
                    totals.dropsMalformed &+= 1
                    continue
                }
                if pending == Self.slotCount || slotsUsed == Self.slotCount { flush() }
                // Unsafe: slot `slotsUsed` < slotCount holds slotCapacity >= length bytes.
                let slot = slots + slotsUsed &* Self.slotCapacity
                slot.copyMemory(from: packet.data, byteCount: packet.length)
                InternetChecksum.complete(slot, length: packet.length, start: start, offset: offset)
                batch[pending] = PacketBuffer(data: slot, capacity: Self.slotCapacity, length: packet.length)
                pending &+= 1
                slotsUsed &+= 1
                totals.checksumsCompleted &+= 1
                continue
            }
            guard let frame = SegmentableFrame(frame: packet.data, length: min(packet.length, packet.capacity),
                                               gsoType: packet.header.gsoType, segmentSize: Int(packet.header.gsoSize)) else {
                totals.dropsMalformed &+= 1
                continue
            }
            guard frame.segmentCount <= Self.maxSegmentsPerFrame else {
                totals.dropsMalformed &+= 1
                continue
            }
            let identification = nextFragmentIdentification
            if frame.isFragmentation { nextFragmentIdentification &+= 1 }
            for segment in 0..<frame.segmentCount {
                if pending == Self.slotCount || slotsUsed == Self.slotCount { flush() }
                // Unsafe: a piece is at most the frame's length + 8 <= slotCapacity.
                let slot = slots + slotsUsed &* Self.slotCapacity
                let length = frame.isFragmentation ? frame.writeFragment(segment, to: slot, identification: identification)
                    : frame.writeSegment(segment, to: slot)
                batch[pending] = PacketBuffer(data: slot, capacity: Self.slotCapacity, length: length)
                pending &+= 1
                slotsUsed &+= 1
            }
            totals.framesSegmented &+= 1
            totals.segments &+= UInt64(frame.segmentCount)
        }
        flush()
    }
}
