/// Guest receive: frames enter the guest through this side.
extension PackedVirtqueue {
    /// Copies frames (virtio-net header + data) into receive buffers the guest made available
    /// and returns how many were delivered, with `SplitVirtqueue.enqueueBurst`'s rules and
    /// counters (callers must not count undelivered frames again). Without MRG_RXBUF a frame
    /// uses one buffer and a buffer too small for it stays available for the next frame; with
    /// it a frame may span several buffers and num_buffers says how many (5.1.6.4). An invalid
    /// buffer is given back with a used length of 0 (a bad id skipped) and ends the burst;
    /// so does the walk budget of `RingWalkLimits`.
    @inlinable
    public func enqueueBurst(_ buffers: UnsafePointer<PacketBuffer>, count: Int) -> Int {
        guard count > 0 else { return 0 }
        var counters = VirtqueueBurstCounters()
        guard !broken else {
            counters.dropsNoBuffers &+= UInt64(count)
            settings.statistics.record(counters)
            return 0
        }
        claims.begin()
        prefetchBurst(slots: count, forWriting: true)
        let oldUsed = nextUsed
        let startAvail = nextAvail
        let startWrap = availWrap
        // The avail position lives in locals on the usual path (see dequeueBurst); `deliver`
        // works on the stored properties, so they are synchronised around it.
        var position = startAvail
        var wrap = startWrap
        var consumed = 0
        var usedWritten = 0
        var frames = ReceiveBurstFrames(buffers, count: count, settings: settings)
        var delivered = 0
        var walked = 0
        var invalid = false
        while let packet = frames.next(&counters) {
            if deliverToOneDescriptor(packet, at: position, wrap: wrap, consumed: consumed, usedWritten: usedWritten) {
                advance(&position, &wrap, by: 1)
                consumed &+= 1
                usedWritten &+= 1
                walked &+= 1
                counters.packets &+= 1
                counters.bytes &+= UInt64(packet.pointee.length)
                delivered &+= 1
                continue
            }
            nextAvail = position
            availWrap = wrap
            let outcome = deliver(packet, consumed: &consumed, usedWritten: &usedWritten, walked: &walked, &counters)
            position = nextAvail
            wrap = availWrap
            guard frames.count(outcome, &counters) else {
                invalid = outcome == .invalidChain
                if outcome == .ringBroken { ringGuard.stop(broken: &broken, &counters) }
                break
            }
            if outcome == .delivered { delivered &+= 1 }
        }
        ringGuard.burstEnded(atInvalidChain: invalid, broken: &broken, &counters)
        nextAvail = position
        availWrap = wrap
        writePendingUsed(usedWritten)
        let moved = position != startAvail || wrap != startWrap
        finishBurst(usedWritten: usedWritten, oldUsed: oldUsed, availTaken: moved, &counters)
        return delivered
    }

    /// The usual case in one step, as `deliver` would do it: the buffer at `position` is one
    /// available, writable ring descriptor (no NEXT, no INDIRECT) that holds the header and
    /// the whole frame, with an id not yet taken this burst. Places the frame and records its
    /// used descriptor as pending entry `usedWritten` (the caller moves past its one slot).
    /// False, with nothing changed, otherwise: `deliver` then takes the frame. No chain
    /// walker: its per-frame set-up on the stack was where the poll thread stalled.
    @inlinable @inline(__always)
    func deliverToOneDescriptor(_ packet: UnsafePointer<PacketBuffer>, at position: UInt16, wrap: Bool, consumed: Int,
                                usedWritten: Int) -> Bool {
        guard consumed < Int(size) else { return false }
        let flags = descriptorFlags(position)  // acquire: the entry's other fields after it
        guard (flags & Self.flagAvail != 0) == wrap, (flags & Self.flagUsed != 0) != wrap,
              flags & (RingDescriptor.flagNext | RingDescriptor.flagIndirect) == 0,
              flags & RingDescriptor.flagWrite != 0 else { return false }
        // Safe: position < size; the entry's 16 bytes are inside the checked ring.
        let descriptor = RingDescriptor(packed: ring + Int(position) &* 16)
        // The whole buffer must translate, as `deliver` requires; header and frame must fit
        // (their sum fits in UInt32: checked by enqueueBurst).
        guard settings.headerSize &+ packet.pointee.length <= Int(descriptor.length),
              let host = settings.translator.guestPhysical(descriptor.address, length: UInt64(descriptor.length)),
              claims.claim(descriptor.id) else { return false }
        let total = ReceiveFramePlacement.placeWhole(packet, headerSize: settings.headerSize, into: host)
        if settings.logData { settings.log?.markGuestPhysical(descriptor.address, length: UInt64(total)) }
        // Safe: usedWritten <= consumed < size, the pending tables' length.
        pendingIDs[usedWritten] = descriptor.id
        pendingLengths[usedWritten] = UInt32(truncatingIfNeeded: total)
        pendingSlots[usedWritten] = 1
        return true
    }

    /// Places one frame in the buffers from `nextAvail` on. Its used descriptors join the
    /// burst's (pendingIDs/Lengths/Slots from `usedWritten` on, written by the caller at the
    /// burst's end) only once it is placed whole (or given back empty with an invalid buffer);
    /// a frame that runs out of buffers leaves them available. `walked` counts the
    /// descriptors read, against `RingWalkLimits.maxDescriptorsPerBurst`.
    @inlinable @inline(__always)
    func deliver(_ packet: UnsafePointer<PacketBuffer>, consumed: inout Int, usedWritten: inout Int, walked: inout Int,
                 _ counters: inout VirtqueueBurstCounters) -> ReceiveOutcome {
        let ringSize = Int(size)

        var placement = ReceiveFramePlacement(packet, headerSize: settings.headerSize)
        var probe = nextAvail          // next slot to look at
        var probeWrap = availWrap
        var probeConsumed = consumed
        var entries = 0                // buffers this frame took so far (pending used descriptors)

        while !placement.isComplete {
            if !settings.mergeableReceiveBuffers && entries == 1 {
                // The one buffer a frame may use was too small: leave it available.
                claims.unclaim(pendingIDs[usedWritten])
                return .tooLarge
            }
            guard probeConsumed < ringSize, walked < RingWalkLimits.maxDescriptorsPerBurst,
                  isAvailable(slot: probe, wrap: probeWrap) else {
                releasePending(from: usedWritten, entries)
                return .noBuffers
            }
            var chain = PackedDescriptorChain(ring: UnsafeRawPointer(ring), ringSize: size, position: probe,
                                              slotsLeft: ringSize &- probeConsumed, indirectAllowed: settings.indirect, memory: settings.translator)
            defer { walked &+= chain.walked }
            // The buffer id is known only at the chain's end: if it turns out invalid, the
            // frame is not delivered and what was written into this buffer does not count.
            let placed = placement.fill(from: &chain, log: settings.log)
            let malformed = placed == nil
            let chainWritten = placed ?? 0
            // The buffer's extent: the rest of its ring descriptors (a frame may end early).
            guard chain.skipToEnd() else {
                releasePending(from: usedWritten, entries)
                return .ringBroken
            }
            let slots = chain.ringDescriptors
            advance(&probe, &probeWrap, by: slots)
            probeConsumed &+= Int(slots)
            let id = chain.bufferID
            guard claims.claim(id) else {
                counters.invalidHeads &+= 1
                releasePending(from: usedWritten, entries)
                if entries == 0 {
                    // Nothing of this frame is pending before it: consume the bad buffer now.
                    nextAvail = probe
                    availWrap = probeWrap
                    consumed = probeConsumed
                }
                return .invalidChain
            }
            // Safe: usedWritten + entries < consumed slots this burst <= size, the
            // pending tables' length.
            let pending = usedWritten &+ entries
            pendingIDs[pending] = id
            pendingSlots[pending] = slots
            pendingLengths[pending] = malformed ? 0 : chainWritten
            entries &+= 1
            if malformed {
                // Give this frame's buffers so far and the bad one back empty; the burst ends.
                var i = 0
                while i < entries {
                    pendingLengths[usedWritten] = 0
                    usedWritten &+= 1
                    i &+= 1
                }
                nextAvail = probe
                availWrap = probeWrap
                consumed = probeConsumed
                counters.dropsMalformedDescriptor &+= 1
                return .invalidChain
            }
        }
        if settings.mergeableReceiveBuffers && entries > 1 {
            placement.storeBufferCount(UInt16(truncatingIfNeeded: entries), log: settings.logData ? settings.log : nil)
        }
        usedWritten &+= entries
        nextAvail = probe
        availWrap = probeWrap
        consumed = probeConsumed
        return .delivered
    }

    /// Forgets the ids of a frame that was not placed (its buffers stay available): the
    /// `entries` pending from `start` on.
    @inlinable @inline(__always)
    func releasePending(from start: Int, _ entries: Int) {
        var i = 0
        while i < entries {
            claims.unclaim(pendingIDs[start &+ i])
            i &+= 1
        }
    }
}
