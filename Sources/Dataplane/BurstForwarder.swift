import Virtio

/// Switches one received burst: learns source MACs, looks up destinations, and hands each
/// output port the packets meant for it in one transmit call. Per-thread scratch and
/// counters; nothing is allocated, locked (beyond a shared ring's burst lock) or logged.
struct BurstForwarder {
    static let flood = -1
    static let drop = -2

    let fdb: MacLearningTable
    let pool: PacketBufferPool
    let counters: PortCounters
    // Unsafe: `burstSize` destination slots, owned by this forwarder's thread.
    let destinations: UnsafeMutablePointer<Int>

    init(fdb: MacLearningTable, pool: PacketBufferPool, counters: PortCounters) {
        self.fdb = fdb
        self.pool = pool
        self.counters = counters
        destinations = .allocate(capacity: PacketBufferPool.burstSize)
    }

    func release() { destinations.deallocate() }

    /// Forwards the `count` packets in the pool's receive buffers that came in on `source`.
    @inline(__always)
    func forward(count: Int, from source: PolledQueue, snapshot: PollSnapshot, now: UInt32) {
        let buffers = pool.buffers
        let inPort = source.portID
        var sawFlood = false
        var firstDestination = Self.drop
        var allSame = true
        var bytes: UInt64 = 0
        var broadcast: UInt64 = 0
        var multicast: UInt64 = 0
        for i in 0..<count {
            let length = buffers[i].length
            bytes &+= UInt64(length)
            counters.add(PortCounters.sizeBucket(length), port: inPort, 1)
            // Unsafe: dequeue returns only frames of at least 14 bytes (two MACs and a type).
            let frame = buffers[i].data
            let destinationMAC = MacAddress.load(frame)
            let sourceMAC = MacAddress.load(frame + 6)
            var out = Self.flood
            if length > source.maxFrameLength && buffers[i].header.gsoType == 0 {
                counters.add(.dropsMTUExceeded, port: inPort, 1)
                out = Self.drop
            } else {
                if !MacAddress.isMulticast(sourceMAC), fdb.learn(sourceMAC, port: inPort, now: now) == .tableFull {
                    counters.add(.dropsMACTableFull, port: inPort, 1)
                }
                if MacAddress.isMulticast(destinationMAC) {
                    if destinationMAC == MacAddress.broadcast { broadcast &+= 1 } else { multicast &+= 1 }
                } else {
                    let learned = fdb.lookup(destinationMAC)
                    if learned == inPort {
                        // Never send a frame back out of its ingress port.
                        counters.add(.dropsHairpin, port: inPort, 1)
                        out = Self.drop
                    } else if learned >= 0 {
                        out = learned
                    }
                }
            }
            if out == Self.flood { sawFlood = true }
            destinations[i] = out
            if i == 0 { firstDestination = out } else if out != firstDestination { allSame = false }
        }
        counters.add(.rxPackets, port: inPort, UInt64(count))
        counters.add(.rxBytes, port: inPort, bytes)
        if broadcast != 0 { counters.add(.rxBroadcast, port: inPort, broadcast) }
        if multicast != 0 { counters.add(.rxMulticast, port: inPort, multicast) }

        if allSame && firstDestination >= 0 {
            transmit(buffers, count: count, to: firstDestination, snapshot: snapshot)
            return
        }
        if sawFlood {
            for p in 0..<snapshot.presentPorts.count {
                let port = snapshot.presentPorts[p]
                if port == inPort { continue }
                let gathered = gather(count: count) { $0 == Self.flood || $0 == port }
                if gathered > 0 { transmit(pool.scratch, count: gathered, to: port, snapshot: snapshot) }
            }
        } else {
            // A handful of distinct unicast destinations: gather each once.
            for i in 0..<count {
                let port = destinations[i]
                if port < 0 { continue }
                var seenBefore = false
                for j in 0..<i where destinations[j] == port { seenBefore = true; break }
                if seenBefore { continue }
                let gathered = gather(count: count) { $0 == port }
                transmit(pool.scratch, count: gathered, to: port, snapshot: snapshot)
            }
        }
    }

    @inline(__always)
    private func gather(count: Int, where matches: (Int) -> Bool) -> Int {
        var gathered = 0
        for i in 0..<count where matches(destinations[i]) {
            pool.scratch[gathered] = pool.buffers[i]
            gathered &+= 1
        }
        return gathered
    }

    @inline(__always)
    private func transmit(_ packets: UnsafeMutablePointer<PacketBuffer>, count: Int, to port: Int, snapshot: PollSnapshot) {
        guard port < snapshot.targets.count else { return }
        // Unsafe (guaranteed refs): the snapshot keeps rings, ports and locks alive.
        let target = snapshot.targets[port]
        let delivered: Int
        if let queue = target.queue {
            target.lock?._withUnsafeGuaranteedRef { $0.lock() }
            delivered = queue._withUnsafeGuaranteedRef { $0.enqueueBurst(packets, count: count) }
            target.lock?._withUnsafeGuaranteedRef { $0.unlock() }
        } else if let queue = target.packedQueue {
            target.lock?._withUnsafeGuaranteedRef { $0.lock() }
            delivered = queue._withUnsafeGuaranteedRef { $0.enqueueBurst(packets, count: count) }
            target.lock?._withUnsafeGuaranteedRef { $0.unlock() }
        } else if let packetPort = target.packetPort {
            target.lock?._withUnsafeGuaranteedRef { $0.lock() }
            delivered = packetPort._withUnsafeGuaranteedRef { $0.transmitBurst(packets, count: count) }
            target.lock?._withUnsafeGuaranteedRef { $0.unlock() }
        } else {
            if target.isPresent { counters.add(.dropsRingNotReady, port: port, UInt64(count)) }
            return
        }
        counters.add(.txPackets, port: port, UInt64(delivered))
        if delivered != count { counters.add(.txDropped, port: port, UInt64(count &- delivered)) }
    }
}
