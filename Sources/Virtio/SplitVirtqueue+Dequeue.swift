import CVhostShims

/// Guest transmit: frames leave the guest through this side.
extension SplitVirtqueue {
    /// Copies up to `maxCount` frames the guest transmitted into `buffers` (frame bytes into
    /// `.data`, `.length` set, the virtio-net header into `.header`) and returns how many.
    ///
    /// Every chain taken is given back at once with a used entry of length 0 (the device
    /// writes nothing into transmit buffers). Frames that break a rule are consumed, counted
    /// and skipped, never trusted: shorter than the net header, under 14 bytes or over the
    /// buffer's capacity, invalid headers. An invalid chain (wrong direction, unmapped or
    /// region-crossing buffers, loops, over-long chains, bad indirect tables) is consumed and
    /// counted and ends the burst; so does a head out of range or taken twice in a burst,
    /// which is skipped without a used entry (`invalidHeads`). A burst walks at most
    /// `RingWalkLimits.maxDescriptorsPerBurst` descriptors (plus the chain that crosses it).
    @inlinable
    public func dequeueBurst(into buffers: UnsafeMutablePointer<PacketBuffer>, maxCount: Int) -> Int {
        guard !broken, maxCount > 0 else { return 0 }
        var counters = VirtqueueBurstCounters()
        guard let pending = pendingAvailEntries(&counters) else {
            settings.statistics.record(counters)
            return 0
        }
        guard pending != 0 else { return 0 }
        claims.begin()
        var taken: UInt16 = 0
        var usedWritten: UInt16 = 0
        var produced = 0
        var walked = 0
        var invalid = false
        prefetchBurst(entries: min(pending, UInt16(truncatingIfNeeded: min(maxCount, Int(UInt16.max)))), forWriting: false)
        while taken < pending && produced < maxCount && walked < RingWalkLimits.maxDescriptorsPerBurst {
            let head = availHead(at: taken)
            taken &+= 1
            guard claims.claim(head) else {
                counters.invalidHeads &+= 1
                invalid = true
                break
            }
            // Safe: produced < maxCount, the caller's buffer count.
            let buffer = buffers + produced
            let outcome = copyTransmittedFrame(head: head, into: buffer, walked: &walked)
            writeUsedEntry(at: usedWritten, id: head, length: 0)
            usedWritten &+= 1
            guard counters.countTransmit(outcome, length: buffer.pointee.length, produced: &produced) else {
                invalid = true
                break
            }
        }
        ringGuard.burstEnded(atInvalidChain: invalid, broken: &broken, &counters)
        finishBurst(availTaken: taken, usedWritten: usedWritten, &counters)
        return produced
    }

    /// Gathers one chain: the first `headerSize` bytes (wherever the descriptors split them)
    /// into the header, the rest into the buffer's data. Adds the descriptors it read to `walked`.
    @inlinable @inline(__always)
    func copyTransmittedFrame(head: UInt16, into buffer: UnsafeMutablePointer<PacketBuffer>, walked: inout Int) -> TransmitOutcome {
        walked &+= 1
        // The usual chain is one readable descriptor: no walker for it (its set-up on the
        // stack is re-read in other widths, which waits for the store buffer to drain).
        // Safe: head < size (claimed), inside the checked descriptor table.
        let descriptor = RingDescriptor(split: descriptors + Int(head) &* 16)
        if descriptor.flags & (RingDescriptor.flagNext | RingDescriptor.flagIndirect | RingDescriptor.flagWrite) == 0 {
            // What the walker checks for one descriptor: the whole range in one region.
            guard let host = settings.translator.guestPhysical(descriptor.address, length: UInt64(descriptor.length)) else {
                return .malformedDescriptor
            }
            var gather = TransmitFrameGather(into: buffer, headerSize: settings.headerSize)
            gather.take(host, length: descriptor.length)
            return gather.finish(into: buffer, minimumFrameLength: Self.minimumFrameLength, negotiated: settings.negotiatedFeatures)
        }
        var chain = DescriptorChain(descriptorTable: UnsafeRawPointer(descriptors), ringSize: size, head: head,
                                    indirectAllowed: settings.indirect, memory: settings.translator)
        defer { walked &+= Int(chain.walked) &- 1 }
        var gather = TransmitFrameGather(into: buffer, headerSize: settings.headerSize)
        guard gather.takeAll(from: &chain) else { return .malformedDescriptor }
        return gather.finish(into: buffer, minimumFrameLength: Self.minimumFrameLength, negotiated: settings.negotiatedFeatures)
    }
}
