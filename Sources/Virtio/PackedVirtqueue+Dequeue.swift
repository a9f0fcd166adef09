/// Guest transmit: frames leave the guest through this side.
extension PackedVirtqueue {
    /// Copies up to `maxCount` frames the guest transmitted into `buffers` and returns how
    /// many, with `SplitVirtqueue.dequeueBurst`'s rules: every buffer taken is given back at
    /// once with a used length of 0; frames that break a rule are consumed, counted and
    /// skipped; an invalid buffer is consumed and counted and ends the burst, and so does a
    /// buffer id out of range or seen twice in a burst, skipped without a used descriptor
    /// (`invalidHeads`); a chain of NEXT flags longer than what is left of the ring's lap
    /// breaks the ring. A burst consumes at most `size` slots, so an IN_ORDER batch's used
    /// position stays inside the ring, and walks at most `RingWalkLimits.maxDescriptorsPerBurst`
    /// descriptors (plus the buffer that crosses it).
    @inlinable
    public func dequeueBurst(into buffers: UnsafeMutablePointer<PacketBuffer>, maxCount: Int) -> Int {
        guard !broken, maxCount > 0, isAvailable(slot: nextAvail, wrap: availWrap) else { return 0 }
        var counters = VirtqueueBurstCounters()
        claims.begin()
        prefetchBurst(slots: maxCount, forWriting: false)
        let oldUsed = nextUsed
        // The avail position lives in locals for the burst: the stored properties would be
        // reloaded after every copy, in wider loads than their 16-bit stores, and such a load
        // waits for the store buffer to drain.
        var position = nextAvail
        var wrap = availWrap
        var consumed = 0
        var usedWritten = 0
        var produced = 0
        var walked = 0
        var invalid = false
        // Bounded by one lap of the ring even if the guest keeps refilling behind us.
        while produced < maxCount && consumed < Int(size) && walked < RingWalkLimits.maxDescriptorsPerBurst
                && isAvailable(slot: position, wrap: wrap) {
            // Safe: produced < maxCount, the caller's buffer count.
            let buffer = buffers + produced
            if let outcome = takeOneDescriptor(at: position, into: buffer, usedWritten: usedWritten) {
                advance(&position, &wrap, by: 1)
                consumed &+= 1
                usedWritten &+= 1
                walked &+= 1
                if counters.count(outcome, length: buffer.pointee.length) { produced &+= 1 }
                continue
            }
            var chain = PackedDescriptorChain(ring: UnsafeRawPointer(ring), ringSize: size, position: position,
                                              slotsLeft: Int(size) &- consumed, indirectAllowed: settings.indirect, memory: settings.translator)
            let outcome = copyTransmittedFrame(&chain, into: buffer)
            guard outcome != .ringBroken else {
                ringGuard.stop(broken: &broken, &counters)
                break
            }
            walked &+= chain.walked
            let slots = chain.ringDescriptors
            consumed &+= Int(slots)
            advance(&position, &wrap, by: slots)
            guard claims.claim(chain.bufferID) else {
                counters.invalidHeads &+= 1
                invalid = true
                break
            }
            // Safe: usedWritten < consumed slots <= size, the pending tables' length.
            pendingIDs[usedWritten] = chain.bufferID
            pendingSlots[usedWritten] = slots
            pendingLengths[usedWritten] = 0
            usedWritten &+= 1
            guard counters.countTransmit(outcome, length: buffer.pointee.length, produced: &produced) else {
                invalid = true
                break
            }
        }
        ringGuard.burstEnded(atInvalidChain: invalid, broken: &broken, &counters)
        nextAvail = position
        availWrap = wrap
        if settings.inOrder && usedWritten > 1 && counters.invalidHeads == 0 {
            // 2.8.9 (IN_ORDER): one used descriptor with the last buffer's id stands for the
            // whole batch, and the used position skips all of its descriptors. Only when every
            // buffer taken got a pending descriptor (no invalid id was skipped): the batch
            // then spans exactly the `consumed` slots (<= size: fits in 16 bits).
            pendingIDs[0] = pendingIDs[usedWritten &- 1]
            pendingSlots[0] = UInt16(truncatingIfNeeded: consumed)
            writePendingUsed(1)
        } else {
            writePendingUsed(usedWritten)
        }
        finishBurst(usedWritten: usedWritten, oldUsed: oldUsed, availTaken: consumed != 0, &counters)
        return produced
    }

    /// The usual case in one step, as the chain walk would do it: the next available buffer
    /// (known to be available) is one readable ring descriptor (no NEXT, no INDIRECT, no
    /// WRITE) that translates whole, with an id not yet taken this burst. Copies it and
    /// records its used descriptor as pending entry `usedWritten` (the caller moves past its
    /// one slot); nil, with nothing changed, otherwise.
    @inlinable @inline(__always)
    func takeOneDescriptor(at position: UInt16, into buffer: UnsafeMutablePointer<PacketBuffer>,
                           usedWritten: Int) -> TransmitOutcome? {
        // Safe: position < size; the entry's 16 bytes are inside the checked ring, and its
        // flags were read with acquire by isAvailable.
        let descriptor = RingDescriptor(packed: ring + Int(position) &* 16)
        guard descriptor.flags & (RingDescriptor.flagNext | RingDescriptor.flagIndirect | RingDescriptor.flagWrite) == 0,
              let host = settings.translator.guestPhysical(descriptor.address, length: UInt64(descriptor.length)),
              claims.claim(descriptor.id) else { return nil }
        var gather = TransmitFrameGather(into: buffer, headerSize: settings.headerSize)
        gather.take(host, length: descriptor.length)
        // Safe: usedWritten < consumed + 1 <= size, the pending tables' length.
        pendingIDs[usedWritten] = descriptor.id
        pendingSlots[usedWritten] = 1
        pendingLengths[usedWritten] = 0
        return gather.finish(into: buffer, minimumFrameLength: Self.minimumFrameLength, negotiated: settings.negotiatedFeatures)
    }

    /// Gathers one buffer: the first `headerSize` bytes into the header, the rest
    /// into the buffer's data. Always walks the whole chain so its slot count is known.
    @inlinable @inline(__always)
    func copyTransmittedFrame(_ chain: inout PackedDescriptorChain, into buffer: UnsafeMutablePointer<PacketBuffer>) -> TransmitOutcome {
        var gather = TransmitFrameGather(into: buffer, headerSize: settings.headerSize)
        guard gather.takeAll(from: &chain) else { return chain.skipToEnd() ? .malformedDescriptor : .ringBroken }
        return gather.finish(into: buffer, minimumFrameLength: Self.minimumFrameLength, negotiated: settings.negotiatedFeatures)
    }
}
