import CVhostShims

/// Guest receive: frames enter the guest through this side.
extension SplitVirtqueue {
    /// Copies frames (virtio-net header + data) into receive buffers the guest posted and
    /// returns how many were delivered. Frames not delivered are counted HERE (callers must
    /// not count them again): `dropsNoBuffers` when the guest ran out of buffers (the rest of
    /// the burst too), `dropsTooLarge` when a frame does not fit one chain (without
    /// MRG_RXBUF) or exceeds its own buffer, `dropsTooShort` under 14 bytes,
    /// `dropsUnsupportedOffload` when the header needs a GUEST_* offload this guest lacks
    /// (the dataplane must resolve checksum/GSO before sending to such a ring).
    ///
    /// Without MRG_RXBUF a frame uses one chain, and a chain too small for it stays posted for
    /// the next frame. With MRG_RXBUF a frame may span several chains and num_buffers says
    /// how many (5.1.6.4). An invalid chain (or head) is given back with a used length of 0
    /// and ends the burst (`RingGuard`); so does the walk budget of `RingWalkLimits`.
    @inlinable
    public func enqueueBurst(_ buffers: UnsafePointer<PacketBuffer>, count: Int) -> Int {
        guard count > 0 else { return 0 }
        var counters = VirtqueueBurstCounters()
        guard !broken, let pending = pendingAvailEntries(&counters) else {
            counters.dropsNoBuffers &+= UInt64(count)
            settings.statistics.record(counters)
            return 0
        }
        claims.begin()
        prefetchBurst(entries: min(pending, UInt16(truncatingIfNeeded: min(count, Int(UInt16.max)))), forWriting: true)
        var taken: UInt16 = 0
        var usedWritten: UInt16 = 0
        var frames = ReceiveBurstFrames(buffers, count: count, settings: settings)
        var delivered = 0
        var walked = 0
        var invalid = false
        while let packet = frames.next(&counters) {
            let outcome = deliver(packet, pending: pending, taken: &taken, usedWritten: &usedWritten, walked: &walked, &counters)
            guard frames.count(outcome, &counters) else {
                invalid = outcome == .invalidChain  // a split ring never breaks mid-burst
                break
            }
            if outcome == .delivered { delivered &+= 1 }
        }
        ringGuard.burstEnded(atInvalidChain: invalid, broken: &broken, &counters)
        finishBurst(availTaken: taken, usedWritten: usedWritten, &counters)
        return delivered
    }

    /// Places the whole frame when chain `head` is one writable descriptor (no NEXT, no
    /// INDIRECT) that holds it and translates whole; returns the bytes written, or nil with
    /// nothing written (the walker then takes the chain). No walker set-up on the usual path
    /// (see copyTransmittedFrame).
    @inlinable @inline(__always)
    func placeInOneDescriptor(head: UInt16, _ packet: UnsafePointer<PacketBuffer>) -> UInt32? {
        // Safe: head < size (claimed), inside the checked descriptor table.
        let descriptor = RingDescriptor(split: descriptors + Int(head) &* 16)
        guard descriptor.flags & (RingDescriptor.flagNext | RingDescriptor.flagIndirect | RingDescriptor.flagWrite)
                == RingDescriptor.flagWrite,
              settings.headerSize &+ packet.pointee.length <= Int(descriptor.length),
              let host = settings.translator.guestPhysical(descriptor.address, length: UInt64(descriptor.length)) else { return nil }
        let count = ReceiveFramePlacement.placeWhole(packet, headerSize: settings.headerSize, into: host)
        if settings.logData { settings.log?.markGuestPhysical(descriptor.address, length: UInt64(count)) }
        return UInt32(truncatingIfNeeded: count)  // count <= length: u32
    }

    /// Delivers one frame into the chains after `taken`. On success `taken` and
    /// `usedWritten` include its chains; used entries are written but not yet published.
    /// `walked` counts the descriptors read, against `RingWalkLimits.maxDescriptorsPerBurst`.
    @inlinable @inline(__always)
    func deliver(_ packet: UnsafePointer<PacketBuffer>, pending: UInt16, taken: inout UInt16, usedWritten: inout UInt16,
                 walked: inout Int, _ counters: inout VirtqueueBurstCounters) -> ReceiveOutcome {
        var placement = ReceiveFramePlacement(packet, headerSize: settings.headerSize)
        var probe = taken          // next avail entry to look at
        var entries: UInt16 = 0    // used entries written for this frame so far
        var lastHead: UInt16 = 0

        while !placement.isComplete {
            if !settings.mergeableReceiveBuffers && entries == 1 {
                // The one chain a frame may use was too small: leave it posted.
                claims.unclaim(lastHead)
                return .tooLarge
            }
            guard probe < pending, walked < RingWalkLimits.maxDescriptorsPerBurst else { return .noBuffers }
            let head = availHead(at: probe)
            probe &+= 1
            walked &+= 1
            guard claims.claim(head) else {
                counters.invalidHeads &+= 1
                // Nothing of this frame is pending before it: consume the bad entry now.
                if entries == 0 { taken = probe }
                return .invalidChain
            }
            lastHead = head
            if entries == 0, let written = placeInOneDescriptor(head: head, packet) {
                // The usual case: the whole frame in the chain's one writable descriptor.
                writeUsedEntry(at: usedWritten, id: head, length: written)
                entries = 1
                break
            }
            var chain = DescriptorChain(descriptorTable: UnsafeRawPointer(descriptors), ringSize: size, head: head,
                                        indirectAllowed: settings.indirect, memory: settings.translator)
            defer { walked &+= Int(chain.walked) &- 1 }
            let placed = placement.fill(from: &chain, log: settings.log)
            let malformed = placed == nil
            let chainWritten = placed ?? 0
            if malformed {
                // Give this frame's chains so far and the bad one back empty; the burst ends.
                writeUsedEntry(at: usedWritten &+ entries, id: head, length: 0)
                var i: UInt16 = 0
                while i < entries {
                    setUsedEntryLength(at: usedWritten &+ i, length: 0)
                    i &+= 1
                }
                entries &+= 1
                usedWritten &+= entries
                taken = probe
                counters.dropsMalformedDescriptor &+= 1
                return .invalidChain
            }
            writeUsedEntry(at: usedWritten &+ entries, id: head, length: chainWritten)
            entries &+= 1
        }
        if settings.mergeableReceiveBuffers && entries > 1 { placement.storeBufferCount(entries, log: settings.logData ? settings.log : nil) }
        taken = probe
        usedWritten &+= entries
        return .delivered
    }
}
