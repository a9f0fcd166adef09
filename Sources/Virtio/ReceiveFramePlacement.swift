import VhostSystem

/// Writes one received frame, virtio-net header first, into the guest's receive buffers one
/// translated segment at a time; shared by both ring layouts. A value: a caller that must
/// undo a buffer (packed ring: an invalid buffer id found at the chain's end) keeps a copy
/// from before it and restores it.
@usableFromInline
struct ReceiveFramePlacement {
    @usableFromInline let header: VirtioNetHeader
    @usableFromInline let headerSize: Int
    @usableFromInline let frame: UnsafeRawPointer
    /// Header + frame bytes.
    @usableFromInline let total: Int
    /// Bytes placed so far.
    @usableFromInline var written = 0
    // Where num_buffers (header bytes 10 and 11) landed, and their guest-physical addresses:
    // they are written last (with MRG_RXBUF), so they are logged again after that write.
    @usableFromInline var bufferCountLow: UnsafeMutableRawPointer? = nil
    @usableFromInline var bufferCountHigh: UnsafeMutableRawPointer? = nil
    @usableFromInline var bufferCountLowAddress: UInt64 = 0
    @usableFromInline var bufferCountHighAddress: UInt64 = 0

    /// `packet.length + headerSize` must fit in UInt32 (checked by the enqueue callers).
    @inlinable @inline(__always)
    init(_ packet: UnsafePointer<PacketBuffer>, headerSize: Int) {
        var header = packet.pointee.header
        header.bufferCount = 1
        self.header = header
        self.headerSize = headerSize
        frame = UnsafeRawPointer(packet.pointee.data)
        total = headerSize &+ packet.pointee.length
    }

    @inlinable @inline(__always)
    var isComplete: Bool { written >= total }

    /// The one-buffer case of both ring layouts, without a placement: the header (num_buffers
    /// 1; stored only if it differs) and the whole frame into `host`, which must hold
    /// `headerSize + packet.length` bytes. Returns that count. The caller logs them.
    @inlinable @inline(__always)
    static func placeWhole(_ packet: UnsafePointer<PacketBuffer>, headerSize: Int, into host: UnsafeMutableRawPointer) -> Int {
        var header = packet.pointee.header
        header.bufferCount = 1
        // Safe: host holds headerSize + length bytes (the caller's condition).
        _ = header.storeIfDifferent(to: host, size: headerSize)
        (host + headerSize).copyMemory(from: UnsafeRawPointer(packet.pointee.data), byteCount: packet.pointee.length)
        return headerSize &+ packet.pointee.length
    }

    /// Fills the next bytes of one writable buffer segment (`length` translated bytes at
    /// `host`, guest-physical `guestAddress`); returns how many it wrote. The caller logs them.
    @inlinable @inline(__always)
    mutating func place(into host: UnsafeMutableRawPointer, length: UInt32, guestAddress: UInt64) -> Int {
        let count = min(Int(length), total &- written)
        var destination = host
        var remaining = count
        if written == 0 && remaining >= headerSize {
            // The usual case: the whole header fits the first buffer.
            // Safe: destination has `length` >= count >= headerSize bytes.
            _ = header.storeIfDifferent(to: destination, size: headerSize)
            if headerSize > 10 { noteBufferCount(at: destination, guestAddress: guestAddress, from: 0) }
            destination += headerSize
            remaining &-= headerSize
            written = headerSize
        } else if written < headerSize {
            // A header split over buffers continues at the start of this one (destination == host).
            let take = min(remaining, headerSize &- written)
            Self.scatterHeader(header, size: headerSize, from: written, count: take, to: destination)
            if headerSize > 10 { noteBufferCount(at: destination, guestAddress: guestAddress, from: written, count: take) }
            destination += take
            remaining &-= take
            written &+= take
        }
        if remaining > 0 {
            // Safe: the source is inside the frame (written - headerSize + remaining <= length);
            // the destination inside the translated buffer.
            destination.copyMemory(from: frame + (written &- headerSize), byteCount: remaining)
            written &+= remaining
        }
        return count
    }

    /// Records where header bytes 10 and 11 went when bytes [from, from + count) of the
    /// header were written at `destination`.
    @inlinable @inline(__always)
    mutating func noteBufferCount(at destination: UnsafeMutableRawPointer, guestAddress: UInt64, from: Int, count: Int = 12) {
        // Safe: the offsets are inside the bytes just written.
        if from <= 10 && 10 < from &+ count {
            bufferCountLow = destination + (10 &- from)
            bufferCountLowAddress = guestAddress &+ UInt64(10 &- from)
        }
        if from <= 11 && 11 < from &+ count {
            bufferCountHigh = destination + (11 &- from)
            bufferCountHighAddress = guestAddress &+ UInt64(11 &- from)
        }
    }

    /// With MRG_RXBUF, a frame in more than one buffer says how many in num_buffers
    /// (VIRTIO 1.1 5.1.6.4). The header's pages were logged when it went in and QEMU may have
    /// copied them since, so the late write is logged again (write first, then log).
    @inlinable @inline(__always)
    func storeBufferCount(_ buffers: UInt16, log: DirtyLog?) {
        let value = buffers.littleEndian
        // Safe: both pointers were recorded inside header bytes written for this frame.
        bufferCountLow?.storeBytes(of: UInt8(truncatingIfNeeded: value), as: UInt8.self)
        bufferCountHigh?.storeBytes(of: UInt8(truncatingIfNeeded: value >> 8), as: UInt8.self)
        if let log {
            log.markGuestPhysical(bufferCountLowAddress, length: 1)
            log.markGuestPhysical(bufferCountHighAddress, length: 1)
        }
    }

    /// Header bytes [offset, offset + count) to `destination`, for a header split over buffers.
    @inlinable @inline(never)
    static func scatterHeader(_ header: VirtioNetHeader, size: Int, from offset: Int, count: Int,
                              to destination: UnsafeMutableRawPointer) {
        var image: (UInt64, UInt64) = (0, 0)
        withUnsafeMutableBytes(of: &image) { bytes in
            // Safe: offset + count <= size <= 12 < 16 bytes of image; destination has `count`
            // translated bytes.
            header.store(to: bytes.baseAddress!, size: size)
            destination.copyMemory(from: bytes.baseAddress!.advanced(by: offset), byteCount: count)
        }
    }
}

extension ReceiveFramePlacement {
    /// Places what is left of the frame into `chain`'s buffers (stopping when it is all
    /// placed), logging each write in `log`. Returns the bytes written into this chain, or nil
    /// when the chain broke a rule: a receive buffer is device-writable only (2.7.4.2, 2.8.6).
    /// Generic for the two walkers, and specialized: no existential on the dataplane.
    @inlinable @inline(__always)
    mutating func fill<Walk: DescriptorChainWalk>(from chain: inout Walk, log: DirtyLog?) -> UInt32? {
        var written: UInt32 = 0
        while !isComplete {
            switch chain.next() {
            case .end:
                return written
            case .malformed:
                return nil
            case .segment(let host, let length, let guestAddress, let writable):
                guard writable else { return nil }
                let count = place(into: host, length: length, guestAddress: guestAddress)
                log?.markGuestPhysical(guestAddress, length: UInt64(count))
                written &+= UInt32(truncatingIfNeeded: count)  // count <= length: u32
            }
        }
        return written
    }
}

extension VirtqueueBurstCounters {
    /// What every frame must be before either ring layout looks for receive buffers: at least
    /// an Ethernet header, inside its buffer with the net header still fitting in 32 bits, and
    /// asking only for offloads the guest negotiated. Counts the drop and returns false otherwise.
    @inlinable @inline(__always)
    mutating func admitsForReceive(_ packet: UnsafePointer<PacketBuffer>, headerSize: Int, negotiated: UInt64) -> Bool {
        guard packet.pointee.length >= SplitVirtqueue.minimumFrameLength else {
            dropsTooShort &+= 1
            return false
        }
        guard packet.pointee.length <= packet.pointee.capacity, packet.pointee.length <= Int(UInt32.max) &- headerSize else {
            dropsTooLarge &+= 1
            return false
        }
        guard packet.pointee.header.isAcceptable(toReceiverWith: negotiated) else {
            dropsUnsupportedOffload &+= 1
            return false
        }
        return true
    }
}

/// What became of one frame offered to a receive ring (either layout).
@usableFromInline
enum ReceiveOutcome {
    case delivered, tooLarge, noBuffers
    /// An invalid chain or buffer (given back empty) or head or id (skipped): the burst ends.
    case invalidChain
    /// Packed ring: a buffer whose NEXT flags do not end within the ring's lap.
    case ringBroken
}

extension VirtqueueBurstCounters {
    /// Counts frame `index` of a burst of `count` (its `length`) by its outcome; false when
    /// the burst ends there (the frames not offered yet are counted as finding no buffers).
    @inlinable @inline(__always)
    mutating func countReceive(_ outcome: ReceiveOutcome, length: Int, index: Int, of count: Int) -> Bool {
        switch outcome {
        case .delivered:
            packets &+= 1
            bytes &+= UInt64(length)
            return true
        case .tooLarge:
            dropsTooLarge &+= 1
            return true
        case .noBuffers, .invalidChain, .ringBroken:
            dropsNoBuffers &+= UInt64(count &- index)
            return false
        }
    }
}

extension VirtqueueBurstCounters {
    /// Counts one transmitted buffer's outcome (`count`) and adds a frame to `produced`;
    /// false when the buffer was an invalid chain, which ends the burst.
    @inlinable @inline(__always)
    mutating func countTransmit(_ outcome: TransmitOutcome, length: Int, produced: inout Int) -> Bool {
        if count(outcome, length: length) {
            produced &+= 1
            return true
        }
        return outcome != .malformedDescriptor
    }
}
