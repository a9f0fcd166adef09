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
    let resolver: OffloadResolver
    // Unsafe: `burstSize` destination slots, owned by this forwarder's thread.
    let destinations: UnsafeMutablePointer<Int>

    init(fdb: MacLearningTable, pool: PacketBufferPool, resolver: OffloadResolver, counters: PortCounters) {
        self.fdb = fdb
        self.pool = pool
        self.resolver = resolver
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
        // Any checksum or segmentation request in the burst (flags | gso_type of every frame).
        var offloadBits: UInt8 = 0
        // The previous frame's MACs and what the table said for them: a burst is mostly one
        // flow, so the table is asked again only when a MAC changes (no 48-bit MAC equals
        // UInt64.max). A learn that changed the table forgets the remembered lookup.
        var rememberedSource = UInt64.max
        var rememberedSourceTableFull = false
        var rememberedDestination = UInt64.max
        var rememberedLearnedPort = Self.flood
        for i in 0..<count {
            let length = buffers[i].length
            bytes &+= UInt64(length)
            counters.add(PortCounters.sizeBucket(length), port: inPort, 1)
            // Unsafe: dequeue returns only frames of at least 14 bytes (two MACs and a type).
            let frame = buffers[i].data
            let destinationMAC = MacAddress.load(frame)
            let sourceMAC = MacAddress.load(frame + 6)
            offloadBits |= buffers[i].header.flags | buffers[i].header.gsoType
            var out = Self.flood
            if length > source.maxFrameLength && buffers[i].header.gsoType == 0 {
                counters.add(.dropsMTUExceeded, port: inPort, 1)
                out = Self.drop
            } else {
                if !MacAddress.isMulticast(sourceMAC) {
                    if sourceMAC != rememberedSource {
                        let result = fdb.learn(sourceMAC, port: inPort, now: now)
                        if result != .unchanged { rememberedDestination = UInt64.max }
                        rememberedSource = sourceMAC
                        rememberedSourceTableFull = result == .tableFull
                    }
                    if rememberedSourceTableFull { counters.add(.dropsMACTableFull, port: inPort, 1) }
                }
                if MacAddress.isMulticast(destinationMAC) {
                    if destinationMAC == MacAddress.broadcast { broadcast &+= 1 } else { multicast &+= 1 }
                } else {
                    if destinationMAC != rememberedDestination {
                        rememberedLearnedPort = fdb.lookup(destinationMAC)
                        rememberedDestination = destinationMAC
                    }
                    let learned = rememberedLearnedPort
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
            transmit(buffers, count: count, to: firstDestination, snapshot: snapshot, offloads: offloadBits != 0)
            return
        }
        if sawFlood {
            for p in 0..<snapshot.presentPorts.count {
                let port = snapshot.presentPorts[p]
                if port == inPort { continue }
                let gathered = gather(count: count) { $0 == Self.flood || $0 == port }
                if gathered > 0 { transmit(pool.scratch, count: gathered, to: port, snapshot: snapshot, offloads: offloadBits != 0) }
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
                transmit(pool.scratch, count: gathered, to: port, snapshot: snapshot, offloads: offloadBits != 0)
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
    private func transmit(_ packets: UnsafeMutablePointer<PacketBuffer>, count: Int, to port: Int, snapshot: PollSnapshot,
                          offloads: Bool) {
        guard port < snapshot.targets.count else { return }
        let target = snapshot.targets[port]
        guard target.driver != nil else {
            if target.isPresent { counters.add(.dropsRingNotReady, port: port, UInt64(count)) }
            return
        }
        if offloads && target.acceptedOffloads != OffloadResolver.everyGuestOffload {
            transmitResolvingOffloads(packets, count: count, to: port, target: target)
            return
        }
        let delivered = enqueue(packets, count: count, to: target)
        counters.add(.txPackets, port: port, UInt64(delivered))
        if delivered != count { counters.add(.txDropped, port: port, UInt64(count &- delivered)) }
    }

    /// The slow path: a burst with checksum or segmentation requests for a destination
    /// that lacks some of those offloads.
    @inline(never)
    private func transmitResolvingOffloads(_ packets: UnsafeMutablePointer<PacketBuffer>, count: Int, to port: Int,
                                           target: TransmitTarget) {
        var totals = OffloadResolver.Totals()
        resolver.resolve(packets, count: count, accepted: target.acceptedOffloads, totals: &totals) { batch, batchCount in
            enqueue(batch, count: batchCount, to: target)
        }
        counters.add(.txPackets, port: port, UInt64(totals.delivered))
        if totals.delivered != totals.offered { counters.add(.txDropped, port: port, UInt64(totals.offered &- totals.delivered)) }
        if totals.checksumsCompleted != 0 { counters.add(.offloadChecksumsCompleted, port: port, totals.checksumsCompleted) }
        if totals.framesSegmented != 0 {
            counters.add(.offloadFramesSegmented, port: port, totals.framesSegmented)
            counters.add(.offloadSegments, port: port, totals.segments)
        }
        if totals.dropsMalformed != 0 { counters.add(.dropsOffloadMalformed, port: port, totals.dropsMalformed) }
    }

    /// Hands `count` frames to the target's ring or kernel socket; returns how many it took.
    @inline(__always)
    private func enqueue(_ packets: UnsafeMutablePointer<PacketBuffer>, count: Int, to target: TransmitTarget) -> Int {
        // Unsafe (guaranteed refs): the snapshot keeps rings, ports and locks alive.
        target.lock?._withUnsafeGuaranteedRef { $0.lock() }
        defer { target.lock?._withUnsafeGuaranteedRef { $0.unlock() } }
        return target.driver?.transmitBurst(packets, count: count) ?? 0
    }
}
