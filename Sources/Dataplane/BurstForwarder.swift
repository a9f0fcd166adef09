import Virtio

/// Switches one received burst: learns source MACs, looks up destinations, and hands each
/// output port the packets meant for it in one enqueue. Per-thread scratch, no allocation.
struct BurstForwarder {
    static let flood = -1
    static let drop = -2

    let fdb: MacLearningTable
    let pool: PacketBufferPool
    let threadIndex: Int
    // Unsafe: `burstSize` destination slots, owned by this forwarder's thread.
    let destinations: UnsafeMutablePointer<Int>

    init(fdb: MacLearningTable, pool: PacketBufferPool, threadIndex: Int) {
        self.fdb = fdb
        self.pool = pool
        self.threadIndex = threadIndex
        destinations = .allocate(capacity: PacketBufferPool.burstSize)
    }

    func release() { destinations.deallocate() }

    /// Forwards `count` packets received on `inPort`; returns how many were delivered.
    @inline(__always)
    func forward(count: Int, inPort: Int, snapshot: PollSnapshot, now: UInt32) -> Int {
        let buffers = pool.buffers
        var sawFlood = false
        var firstDestination = Self.drop
        var allSame = true
        for i in 0..<count {
            // Unsafe: dequeue only returns frames of at least 14 bytes (two MACs and a type).
            let frame = buffers[i].data
            let destinationMAC = MacAddress.load(frame)
            let sourceMAC = MacAddress.load(frame + 6)
            if !MacAddress.isMulticast(sourceMAC) {
                fdb.learn(sourceMAC, port: inPort, now: now)
            }
            var out = Self.flood
            if !MacAddress.isMulticast(destinationMAC) {
                let learned = fdb.lookup(destinationMAC)
                if learned >= 0 {
                    // Never send a frame back out of its ingress port.
                    out = learned == inPort ? Self.drop : learned
                }
            }
            if out == Self.flood { sawFlood = true }
            destinations[i] = out
            if i == 0 { firstDestination = out } else if out != firstDestination { allSame = false }
        }

        if allSame && firstDestination >= 0 {
            return transmit(buffers, count: count, to: firstDestination, snapshot: snapshot)
        }
        var delivered = 0
        if sawFlood {
            for p in 0..<snapshot.presentPorts.count {
                let port = snapshot.presentPorts[p]
                if port == inPort { continue }
                let gathered = gather(count: count) { $0 == Self.flood || $0 == port }
                if gathered > 0 { delivered &+= transmit(pool.scratch, count: gathered, to: port, snapshot: snapshot) }
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
                delivered &+= transmit(pool.scratch, count: gathered, to: port, snapshot: snapshot)
            }
        }
        return delivered
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
    private func transmit(_ packets: UnsafeMutablePointer<PacketBuffer>, count: Int, to port: Int, snapshot: PollSnapshot) -> Int {
        guard port < snapshot.targets.count else { return 0 }
        let target = snapshot.targets[port]
        guard let queue = target.queue else { return 0 }
        if let lock = target.lock {
            lock.lock()
            defer { lock.unlock() }
            return queue.enqueueBurst(packets, count: count)
        }
        return queue.enqueueBurst(packets, count: count)
    }
}
