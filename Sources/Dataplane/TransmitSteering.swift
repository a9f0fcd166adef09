import Virtio

/// One of a port's guest receive rings as a poll thread sends to it, with the lock every
/// thread takes for a burst on it when several threads may send there.
struct SteeredRing {
    let driver: PortDriver
    let lock: Unmanaged<TransmitLock>?
}

/// Spreads frames for a multiqueue guest over its receive rings by flow (`FlowHash`), and
/// sends each ring its frames in one burst, in their order: a counting sort into a
/// fixed-size scratch array, per poll thread (nothing allocated per burst).
struct TransmitSteering {
    /// Frames sorted per call at most (the offload resolver's batches are the largest).
    static let capacity = max(PacketBufferPool.burstSize, OffloadResolver.slotCount)

    // Unsafe: fixed-size slots owned by one poll thread's forwarder, freed by `release()`:
    // each frame's ring, each ring's frame count and next slot (zero between calls), the
    // rings hit in this call, and the frames sorted by ring.
    private let ringOfFrame = UnsafeMutablePointer.zeroedSlots(TransmitSteering.capacity)
    private let framesPerRing = UnsafeMutablePointer.zeroedSlots(PortSpec.maxQueuePairs)
    private let nextSlot = UnsafeMutablePointer.zeroedSlots(PortSpec.maxQueuePairs)
    private let ringsHit = UnsafeMutablePointer.zeroedSlots(TransmitSteering.capacity)
    private let sorted = UnsafeMutablePointer<PacketBuffer>.allocate(capacity: TransmitSteering.capacity)

    func release() {
        ringOfFrame.deallocate()
        framesPerRing.deallocate()
        nextSlot.deallocate()
        ringsHit.deallocate()
        sorted.deallocate()
    }

    /// Sends `count` frames over `rings[0..<ringCount]` (2...maxQueuePairs rings), each frame
    /// to the ring of its flow; returns how many the rings took.
    @inline(__always)
    func send(_ packets: UnsafeMutablePointer<PacketBuffer>, count: Int, rings: UnsafePointer<SteeredRing>, ringCount: Int) -> Int {
        var delivered = 0
        var start = 0
        while start < count {
            let chunk = min(count &- start, Self.capacity)
            delivered &+= sendChunk(packets + start, count: chunk, rings: rings, ringCount: ringCount)
            start &+= chunk
        }
        return delivered
    }

    @inline(__always)
    private func sendChunk(_ packets: UnsafeMutablePointer<PacketBuffer>, count: Int, rings: UnsafePointer<SteeredRing>,
                           ringCount: Int) -> Int {
        var hit = 0
        for i in 0..<count {
            let ring = FlowHash.index(FlowHash.of(packets[i]), among: ringCount)
            ringOfFrame[i] = ring
            if framesPerRing[ring] == 0 {
                ringsHit[hit] = ring
                hit &+= 1
            }
            framesPerRing[ring] &+= 1
        }
        var offset = 0
        for h in 0..<hit {
            let ring = ringsHit[h]
            nextSlot[ring] = offset
            offset &+= framesPerRing[ring]
        }
        for i in 0..<count {
            let ring = ringOfFrame[i]
            sorted[nextSlot[ring]] = packets[i]
            nextSlot[ring] &+= 1
        }
        var delivered = 0
        for h in 0..<hit {
            let ring = ringsHit[h]
            let frames = framesPerRing[ring]
            let target = rings[ring]
            // Unsafe (guaranteed refs): the snapshot keeps the rings and locks alive.
            target.lock?._withUnsafeGuaranteedRef { $0.lock() }
            delivered &+= target.driver.transmitBurst(sorted + (nextSlot[ring] &- frames), count: frames)
            target.lock?._withUnsafeGuaranteedRef { $0.unlock() }
            framesPerRing[ring] = 0
        }
        return delivered
    }
}
