/// The frames of one receive burst, in order, as both ring layouts take them: each one read
/// in place, not copied (a copy on the stack is re-read in other widths, which waits for the
/// store buffer, full of stores into the guest's lines, to drain), and first admitted
/// (`admitsForReceive`: a frame that may not be received is counted and skipped).
@usableFromInline
struct ReceiveBurstFrames {
    @usableFromInline let buffers: UnsafePointer<PacketBuffer>
    @usableFromInline let count: Int
    @usableFromInline let headerSize: Int
    @usableFromInline let negotiatedFeatures: UInt64
    /// The frame `next` returned last (-1 before the first).
    @usableFromInline var index = -1

    @inlinable @inline(__always)
    init(_ buffers: UnsafePointer<PacketBuffer>, count: Int, settings: NegotiatedRingSettings) {
        self.buffers = buffers
        self.count = count
        headerSize = settings.headerSize
        negotiatedFeatures = settings.negotiatedFeatures
    }

    /// The next frame the ring may receive, or nil at the burst's end.
    @inlinable @inline(__always)
    mutating func next(_ counters: inout VirtqueueBurstCounters) -> UnsafePointer<PacketBuffer>? {
        while true {
            index &+= 1
            guard index < count else { return nil }
            // Safe: index < count, the caller's buffer count.
            let packet = buffers + index
            if counters.admitsForReceive(packet, headerSize: headerSize, negotiated: negotiatedFeatures) { return packet }
        }
    }

    /// Counts the outcome of the frame `next` returned last (`countReceive`); false when the
    /// burst ends there.
    @inlinable @inline(__always)
    func count(_ outcome: ReceiveOutcome, _ counters: inout VirtqueueBurstCounters) -> Bool {
        // Safe: index < count (set by the `next` that returned this frame).
        counters.countReceive(outcome, length: buffers[index].length, index: index, of: count)
    }
}
