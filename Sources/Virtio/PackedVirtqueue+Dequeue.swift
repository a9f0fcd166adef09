/// Guest transmit: frames leave the guest through this side.
extension PackedVirtqueue {
    /// Copies up to `maxCount` frames the guest transmitted into `buffers` and returns how
    /// many, with `SplitVirtqueue.dequeueBurst`'s rules: every buffer taken is given back at
    /// once with a used length of 0; buffers that break a rule are consumed, counted and
    /// skipped; a buffer id out of range or seen twice in a burst is skipped without a used
    /// descriptor (`invalidHeads`); a chain of NEXT flags longer than the ring breaks it.
    @inlinable
    public func dequeueBurst(into buffers: UnsafeMutablePointer<PacketBuffer>, maxCount: Int) -> Int {
        guard !broken, maxCount > 0, isAvailable(slot: nextAvail, wrap: availWrap) else { return 0 }
        var counters = VirtqueueBurstCounters()
        claims.begin()
        let oldUsed = nextUsed
        var consumed = 0
        var usedWritten = 0
        var produced = 0
        // Bounded by one lap of the ring even if the guest keeps refilling behind us.
        while produced < maxCount && consumed < Int(size) && isAvailable(slot: nextAvail, wrap: availWrap) {
            var chain = PackedDescriptorChain(ring: UnsafeRawPointer(ring), ringSize: size, position: nextAvail,
                                              indirectAllowed: indirect, memory: translator)
            // Safe: produced < maxCount, the caller's buffer count.
            let buffer = buffers + produced
            let outcome = copyTransmittedFrame(&chain, into: buffer)
            guard outcome != .ringBroken else {
                broken = true
                counters.ringErrors &+= 1
                break
            }
            let slots = chain.ringDescriptors
            consumed &+= Int(slots)
            advance(&nextAvail, &availWrap, by: slots)
            guard claims.claim(chain.bufferID) else {
                counters.invalidHeads &+= 1
                continue
            }
            // Safe: usedWritten < consumed slots <= size, the pending tables' length.
            pendingIDs[usedWritten] = chain.bufferID
            pendingSlots[usedWritten] = slots
            pendingLengths[usedWritten] = 0
            usedWritten &+= 1
            if counters.count(outcome, length: buffer.pointee.length) { produced &+= 1 }
        }
        if inOrder && usedWritten > 1 && counters.invalidHeads == 0 {
            // 2.8.9 (IN_ORDER): one used descriptor with the last buffer's id stands for the
            // whole batch, and the used position skips all of its descriptors. Only when every
            // buffer taken got a pending descriptor (no invalid id was skipped): the batch
            // then spans exactly the `consumed` slots (<= size: fits in 16 bits).
            writeUsed(id: pendingIDs[usedWritten &- 1], length: 0, slots: UInt16(truncatingIfNeeded: consumed), isFirst: true)
        } else {
            writePendingUsed(usedWritten)
        }
        finishBurst(usedWritten: usedWritten, oldUsed: oldUsed, availTaken: consumed != 0, &counters)
        return produced
    }

    /// Gathers one buffer: the first `headerSize` bytes into the header, the rest
    /// into the buffer's data. Always walks the whole chain so its slot count is known.
    @inlinable @inline(__always)
    func copyTransmittedFrame(_ chain: inout PackedDescriptorChain, into buffer: UnsafeMutablePointer<PacketBuffer>) -> TransmitOutcome {
        var gather = TransmitFrameGather(into: buffer, headerSize: headerSize)
        walk: while true {
            switch chain.next() {
            case .end:
                break walk
            case .malformed:
                return chain.skipToEnd() ? .malformedDescriptor : .ringBroken
            case .segment(let host, let length, _, let writable):
                // 2.8.6: a transmit buffer is device-readable only.
                guard !writable else { return chain.skipToEnd() ? .malformedDescriptor : .ringBroken }
                gather.take(host, length: length)
            }
        }
        return gather.finish(into: buffer, minimumFrameLength: Self.minimumFrameLength, negotiated: negotiatedFeatures)
    }
}
