import VhostSystem

/// Gathers one transmitted chain into a dataplane buffer: the first `headerSize` bytes
/// (wherever the descriptors split them) into the virtio-net header, the rest into the
/// buffer's data; shared by both ring layouts. A chain too large for the buffer is still
/// walked to the end (validated and consumed), just not copied further.
@usableFromInline
struct TransmitFrameGather {

    @usableFromInline let headerSize: Int
    @usableFromInline let data: UnsafeMutableRawPointer
    @usableFromInline let capacity: Int
    @usableFromInline var header = VirtioNetHeader()
    @usableFromInline var headerFilled = 0
    @usableFromInline var frameLength = 0
    @usableFromInline var tooLarge = false

    @inlinable @inline(__always)
    init(into buffer: UnsafeMutablePointer<PacketBuffer>, headerSize: Int) {
        self.headerSize = headerSize
        data = buffer.pointee.data
        capacity = buffer.pointee.capacity
    }

    /// Takes one readable segment of `length` translated bytes at `host`.
    @inlinable @inline(__always)
    mutating func take(_ host: UnsafeMutableRawPointer, length: UInt32) {
        var source = UnsafeRawPointer(host)
        var remaining = Int(length)
        if headerFilled < headerSize {
            let taken = VirtioNetHeader.gather(&header, filled: &headerFilled, size: headerSize, from: source, available: remaining)
            source += taken
            remaining &-= taken
        }
        guard remaining > 0 else { return }
        if tooLarge || remaining > capacity &- frameLength {
            tooLarge = true
            return
        }
        // Safe: frameLength + remaining <= capacity of the dataplane buffer, and the source
        // range was translated whole (one region).
        (data + frameLength).copyMemory(from: source, byteCount: remaining)
        frameLength &+= remaining
    }

    /// Takes every segment of `chain`; false at a malformed or device-writable one (a
    /// transmit buffer is device-readable only: 2.7.4.2, 2.8.6). Generic for the two walkers,
    /// and specialized: no existential on the dataplane.
    @inlinable @inline(__always)
    mutating func takeAll<Walk: DescriptorChainWalk>(from chain: inout Walk) -> Bool {
        while true {
            switch chain.next() {
            case .end:
                return true
            case .malformed:
                return false
            case .segment(let host, let length, _, let writable):
                guard !writable else { return false }
                take(host, length: length)
            }
        }
    }

    /// Checks the whole chain and, when it is a deliverable frame, sets the buffer's length
    /// and header.
    @inlinable @inline(__always)
    func finish(into buffer: UnsafeMutablePointer<PacketBuffer>, minimumFrameLength: Int, negotiated features: UInt64) -> TransmitOutcome {
        guard headerFilled == headerSize else { return .tooShort }
        guard !tooLarge else { return .tooLarge }
        guard frameLength >= minimumFrameLength else { return .tooShort }
        guard header.isValidForTransmit(frameLength: frameLength, negotiated: features) else { return .malformedHeader }
        buffer.pointee.length = frameLength
        buffer.pointee.header = header
        return .delivered
    }
}

/// What became of one transmitted chain, for both ring layouts.
@usableFromInline
enum TransmitOutcome {
    case delivered, malformedDescriptor, malformedHeader, tooShort, tooLarge
    /// Packed ring: the buffer's NEXT flags never end, so its extent is unknown.
    case ringBroken
}

extension VirtqueueBurstCounters {
    /// Counts one transmitted chain's outcome; true when it became a frame of `length` bytes.
    @inlinable @inline(__always)
    mutating func count(_ outcome: TransmitOutcome, length: Int) -> Bool {
        switch outcome {
        case .delivered:
            packets &+= 1
            bytes &+= UInt64(length)
            return true
        case .malformedDescriptor: dropsMalformedDescriptor &+= 1
        case .malformedHeader: dropsMalformedHeader &+= 1
        case .tooShort: dropsTooShort &+= 1
        case .tooLarge: dropsTooLarge &+= 1
        case .ringBroken: break  // counted where the ring is declared broken
        }
        return false
    }
}
