import Virtio

/// Switches one received burst: learns source MACs, looks up destinations, and hands each
/// output port the packets meant for it in one transmit call. Per-thread scratch and
/// counters; nothing is allocated, locked (beyond a shared ring's burst lock) or logged.
struct BurstForwarder {
    static let flood = -1
    static let drop = -2
    static let noSharedSegment = -1
    static let mixedSegments = -2

    let fdb: MacLearningTable
    let pool: PacketBufferPool
    let resolver: OffloadResolver
    let counters: PortCounters
    let segmentCounters: SegmentCounters
    let limiters: PortLimiters
    /// Sorts frames for a multiqueue guest by receive ring.
    let steering = TransmitSteering()
    // Unsafe: `burstSize` zeroed slots each, owned by this forwarder's thread, freed by
    // `release()`: each frame's destination, each frame's segment (trunk bursts only), and
    // the segment of each frame gathered into the pool's scratch array.
    let destinations = UnsafeMutablePointer.zeroedSlots(PacketBufferPool.burstSize)
    let segments = UnsafeMutablePointer.zeroedSlots(PacketBufferPool.burstSize)
    let gatheredSegments = UnsafeMutablePointer.zeroedSlots(PacketBufferPool.burstSize)

    func release() {
        destinations.deallocate()
        segments.deallocate()
        gatheredSegments.deallocate()
        steering.release()
    }

    /// Forwards the `count` packets in the pool's receive buffers that came in on `source`,
    /// at second `now` (the MAC table's clock) and TSC time `cycles` (the rate limiters').
    ///
    /// A port with the default policy (`PortRules.isPlain`) takes one predictable branch
    /// here, into a copy of the burst loop specialized without the policy: its frames are
    /// all in the default segment 0, as they are. Other ports' frames are classified
    /// (`admit`: VLAN, allowed source MACs, rate limit) and storm-limited per frame; each
    /// frame's segment keys learning and lookup, and decides where it may be flooded and
    /// whether it leaves tagged.
    @inline(__always)
    func forward(count: Int, from source: PolledQueue, snapshot: PollSnapshot, now: UInt32, cycles: UInt64) {
        let rules = snapshot.rules(of: source.portID)
        if rules.isPlain {
            forward(count: count, from: source, snapshot: snapshot, rules: rules, now: now, cycles: cycles, DefaultPolicy.self)
        } else if !rules.hasLimits {
            forward(count: count, from: source, snapshot: snapshot, rules: rules, now: now, cycles: cycles, SegmentPolicy.self)
        } else {
            forward(count: count, from: source, snapshot: snapshot, rules: rules, now: now, cycles: cycles, PortPolicyApplied.self)
        }
    }

    /// The burst loop, specialized per `Mode` (generic over a type whose one constant the
    /// optimizer folds: no dispatch at run time).
    @inline(__always)
    private func forward<Mode: PolicyMode>(count: Int, from source: PolledQueue, snapshot: PollSnapshot, rules: PortRules,
                                           now: UInt32, cycles: UInt64, _: Mode.Type) {
        let buffers = pool.buffers
        let inPort = source.portID
        let plain = !Mode.appliesPolicy
        // The segment of every frame of the burst, except on a trunk (-1: see `segments`); a
        // constant 0 for the default policy.
        let classifiedSegment = plain ? 0 : rules.taggedSegments == nil ? rules.untaggedSegment : -1
        var allowance = Mode.appliesLimits ? limiters.begin(port: inPort, rules: rules, cycles: cycles, second: now) : PortLimiters.Allowance()
        var popped = false
        // On a trunk: the one segment of every admitted frame, if they share one.
        var sharedSegment = Self.noSharedSegment
        var sawFlood = false
        var firstDestination = Self.drop
        var allSame = true
        var bytes: UInt64 = 0
        var broadcast: UInt64 = 0
        var multicast: UInt64 = 0
        // Any checksum or segmentation request in the burst (flags | gso_type of every frame).
        var offloadBits: UInt8 = 0
        // The previous frame's (segment, MAC) keys and what the table said for them: a burst
        // is mostly one flow, so the table is asked again only when a key changes (no key
        // equals UInt64.max). A learn that changed the table forgets the remembered lookup.
        var rememberedSource = UInt64.max
        var rememberedSourceCounter: PortSwitchCounter?
        var rememberedDestination = UInt64.max
        var rememberedLearnedPort = Self.flood
        var rememberedCarried = true
        for i in 0..<count {
            let length = buffers[i].length
            bytes &+= UInt64(length)
            counters.add(PortSwitchCounter.sizeBucket(ofLength: length), of: inPort, 1)
            // Unsafe: dequeue returns only frames of at least 14 bytes (two MACs and a type).
            let frame = buffers[i].data
            let destinationMAC = MacAddress.load(frame)
            let sourceMAC = MacAddress.load(frame + 6)
            offloadBits |= buffers[i].header.flags | buffers[i].header.gsoType
            let groupDestination = MacAddress.isMulticast(destinationMAC)
            if groupDestination {
                if destinationMAC == MacAddress.broadcast { broadcast &+= 1 } else { multicast &+= 1 }
            }
            var out = Self.flood
            var segment = classifiedSegment
            if length > source.maxFrameLength && buffers[i].header.gsoType == 0 {
                counters.add(.dropsMTUExceeded, of: inPort, 1)
                out = Self.drop
            } else {
                if !plain {
                    // Unsafe: i < count <= burstSize, inside the pool's buffers and `segments`.
                    segment = admit(buffers + i, sourceMAC: sourceMAC, rules: rules, port: inPort, allowance: &allowance, popped: &popped, Mode.self)
                    segments[i] = segment
                    if segment >= 0 && segment != sharedSegment {
                        sharedSegment = sharedSegment == Self.noSharedSegment ? segment : Self.mixedSegments
                    }
                }
                if segment < 0 {
                    out = Self.drop
                } else {
                    if !MacAddress.isMulticast(sourceMAC) {
                        let sourceKey = UInt64(truncatingIfNeeded: segment) << 48 | sourceMAC
                        if sourceKey != rememberedSource {
                            let result = fdb.learn(sourceMAC, segment: segment, port: inPort, now: now, limit: rules.maxMACs)
                            rememberedSource = sourceKey
                            rememberedSourceCounter = nil
                            switch result {
                            case .unchanged: break
                            case .learned, .moved: rememberedDestination = UInt64.max
                            case .evicted:
                                rememberedDestination = UInt64.max
                                counters.add(.macEvictions, of: inPort, 1)
                            case .limitReached: rememberedSourceCounter = .macsNotLearnedLimit
                            case .tableFull: rememberedSourceCounter = .dropsMACTableFull
                            }
                        }
                        if let counter = rememberedSourceCounter { counters.add(counter, of: inPort, 1) }
                    }
                    if !groupDestination {
                        let destinationKey = UInt64(truncatingIfNeeded: segment) << 48 | destinationMAC
                        if destinationKey != rememberedDestination {
                            rememberedLearnedPort = fdb.lookup(destinationMAC, segment: segment)
                            rememberedDestination = destinationKey
                            // Isolation never rests on the table alone: the port must carry the segment.
                            rememberedCarried = rememberedLearnedPort < 0 || snapshot.rules(of: rememberedLearnedPort).carries(segment)
                        }
                        let learned = rememberedLearnedPort
                        if learned == inPort {
                            // Never send a frame back out of its ingress port.
                            counters.add(.dropsHairpin, of: inPort, 1)
                            out = Self.drop
                        } else if learned >= 0 {
                            if rememberedCarried {
                                out = learned
                            } else {
                                counters.add(.dropsVLANEgressNotCarried, of: learned, 1)
                                segmentCounters.add(.notCarried, of: segment & 0xFFF, 1)
                                out = Self.drop
                            }
                        }
                    }
                    if Mode.appliesLimits && rules.storm != nil && out == Self.flood
                        && !admitFlooded(destinationMAC, segment: segment, port: inPort, allowance: &allowance) {
                        out = Self.drop
                    }
                }
            }
            if out == Self.flood { sawFlood = true }
            destinations[i] = out
            if i == 0 { firstDestination = out } else if out != firstDestination { allSame = false }
        }
        counters.add(.rxPackets, of: inPort, UInt64(count))
        counters.add(.rxBytes, of: inPort, bytes)
        if broadcast != 0 { counters.add(.rxBroadcast, of: inPort, broadcast) }
        if multicast != 0 { counters.add(.rxMulticast, of: inPort, multicast) }
        if Mode.appliesLimits { limiters.end(port: inPort, rules: rules, left: allowance) }

        // A trunk burst of one VLAN (the usual case) is sent like an access port's: per burst,
        // not per frame.
        let burstSegment = classifiedSegment >= 0 || sharedSegment < 0 ? classifiedSegment : sharedSegment
        let offloads = offloadBits != 0
        let tags = TagState(keptByIngress: !plain && rules.taggedSegments != nil, ingressUntagged: rules.untaggedSegment)
        if allSame && firstDestination >= 0 {
            // The burst's one send: tags changed for it need not be undone (`restore` below).
            popped = transmit(buffers, count: count, to: firstDestination, snapshot: snapshot, offloads: offloads,
                              segment: burstSegment, frameSegments: segments, tags: tags, lastUse: true) || popped
        } else if sawFlood {
            for p in 0..<snapshot.presentPorts.count {
                let port = snapshot.presentPorts[p]
                if port == inPort { continue }
                let egress = snapshot.rules(of: port)
                let gathered: Int
                if burstSegment >= 0 {
                    // The segment's flood list: the present ports that carry it. (Unicast to a
                    // port that does not carry it was dropped above.)
                    guard egress.carries(burstSegment) else { continue }
                    gathered = gather(count: count, segmented: false) { $0 == Self.flood || $0 == port }
                } else {
                    gathered = gather(count: count, segmented: true) { i, destination in
                        destination == port || (destination == Self.flood && egress.carries(segments[i]))
                    }
                }
                if gathered > 0 {
                    _ = transmit(pool.scratch, count: gathered, to: port, snapshot: snapshot, offloads: offloads,
                                 segment: burstSegment, frameSegments: gatheredSegments, tags: tags, lastUse: false)
                }
            }
        } else {
            // A handful of distinct unicast destinations: gather each once.
            for i in 0..<count {
                let port = destinations[i]
                if port < 0 { continue }
                var seenBefore = false
                for j in 0..<i where destinations[j] == port { seenBefore = true; break }
                if seenBefore { continue }
                let gathered = gather(count: count, segmented: burstSegment < 0) { $0 == port }
                _ = transmit(pool.scratch, count: gathered, to: port, snapshot: snapshot, offloads: offloads,
                             segment: burstSegment, frameSegments: gatheredSegments, tags: tags, lastUse: false)
            }
        }
        if popped { pool.restore(count: count) }
    }

    /// A policed port's frame before learning: its segment, or -1 when it is dropped (and
    /// counted). VLAN ports take the frame's 802.1Q tag off (access: only a priority tag;
    /// trunk: a VLAN it carries, untagged frames go to the native VLAN); then the source MAC
    /// must be allowed and the rate limit must have a token left.
    @inline(__always)
    private func admit<Mode: PolicyMode>(_ buffer: UnsafeMutablePointer<PacketBuffer>, sourceMAC: UInt64, rules: PortRules, port: Int,
                                         allowance: inout PortLimiters.Allowance, popped: inout Bool, _: Mode.Type) -> Int {
        var segment = rules.untaggedSegment
        if segment != 0 || rules.taggedSegments != nil {
            let vid = VLANTag.vid(of: buffer.pointee)
            if vid != VLANTag.untagged {
                if vid != 0 {
                    if rules.taggedSegments == nil { return dropped(.dropsVLANTaggedOnAccess, .taggedOnAccess, port: port, segment: vid) }
                    if !rules.carries(vid) { return dropped(.dropsVLANNotCarried, .notCarried, port: port, segment: vid) }
                    segment = vid
                }
                guard VLANTag.canPop(buffer.pointee) else {
                    counters.add(.dropsVLANMalformed, of: port, 1)
                    return -1
                }
                // A trunk's tagged VLAN keeps its tag until a destination wants the frame
                // untagged (`TagState`): trunk to trunk moves no bytes. Priority tags, access
                // ports and the native VLAN lose it now.
                if rules.taggedSegments == nil || segment == rules.untaggedSegment {
                    VLANTag.popChecked(&buffer.pointee)
                    popped = true
                }
            }
            // Untagged on a trunk without a native VLAN.
            if segment == PortRules.noSegment { return dropped(.dropsVLANNotCarried, .notCarried, port: port, segment: 0) }
        }
        guard Mode.appliesLimits else { return segment }
        if !rules.allows(sourceMAC: sourceMAC) { return dropped(.dropsSpoofed, .spoofed, port: port, segment: segment) }
        if rules.rate != nil {
            if allowance.tokens == 0 { return dropped(.dropsRateLimited, .rateLimited, port: port, segment: segment) }
            allowance.tokens &-= 1
        }
        return segment
    }

    /// Storm control: whether a frame every port of its segment gets (broadcast, multicast,
    /// unknown unicast) is within this second's allowance; counts it when not.
    @inline(__always)
    private func admitFlooded(_ destinationMAC: UInt64, segment: Int, port: Int, allowance: inout PortLimiters.Allowance) -> Bool {
        let kind: PortRules.FloodKinds.Kind
        let counters: (PortSwitchCounter, SegmentDropCounter)
        if destinationMAC == MacAddress.broadcast {
            (kind, counters) = (.broadcast, (.dropsStormBroadcast, .stormBroadcast))
        } else if MacAddress.isMulticast(destinationMAC) {
            (kind, counters) = (.multicast, (.dropsStormMulticast, .stormMulticast))
        } else {
            (kind, counters) = (.unknownUnicast, (.dropsStormUnknownUnicast, .stormUnknownUnicast))
        }
        let left = allowance.flooded[kind]
        if left == 0 {
            _ = dropped(counters.0, counters.1, port: port, segment: segment)
            return false
        }
        allowance.flooded[kind] = left &- 1
        return true
    }

    /// Counts a dropped received frame for its port and its segment; returns -1.
    @inline(__always)
    private func dropped(_ counter: PortSwitchCounter, _ segmentCounter: SegmentDropCounter, port: Int, segment: Int) -> Int {
        counters.add(counter, of: port, 1)
        segmentCounters.add(segmentCounter, of: segment & 0xFFF, 1)
        return -1
    }

    @inline(__always)
    private func gather(count: Int, segmented: Bool, where matches: (Int) -> Bool) -> Int {
        gather(count: count, segmented: segmented) { _, destination in matches(destination) }
    }

    /// Copies the frames whose (index, destination) match into the scratch array, with their
    /// segments when the burst's frames do not share one.
    @inline(__always)
    private func gather(count: Int, segmented: Bool, where matches: (Int, Int) -> Bool) -> Int {
        var gathered = 0
        for i in 0..<count where matches(i, destinations[i]) {
            pool.scratch[gathered] = pool.buffers[i]
            if segmented { gatheredSegments[gathered] = segments[i] }
            gathered &+= 1
        }
        return gathered
    }

    /// Which received frames still carry their 802.1Q tag: on a trunk, those of its tagged
    /// VLANs (every segment but its native one); elsewhere none (popped in `admit`).
    struct TagState {
        var keptByIngress: Bool
        var ingressUntagged: Int

        @inline(__always)
        func hasTag(_ segment: Int) -> Bool { keptByIngress && segment != ingressUntagged }
    }

    /// Sends `count` frames of `segment` (-1: each of `frameSegments[i]`) to `port`, each with
    /// the tag the port wants: its tagged VLANs tagged, its untagged segment without. A frame
    /// already as wanted is not touched. Returns whether frames were left changed (only with
    /// `lastUse`: otherwise every change is undone, as a flooded frame's data is shared).
    @inline(__always)
    private func transmit(_ packets: UnsafeMutablePointer<PacketBuffer>, count: Int, to port: Int, snapshot: PollSnapshot,
                          offloads: Bool, segment: Int, frameSegments: UnsafeMutablePointer<Int>, tags: TagState,
                          lastUse: Bool) -> Bool {
        guard port < snapshot.targets.count else { return false }
        let untagged = snapshot.rules(of: port).untaggedSegment
        if segment >= 0 && tags.hasTag(segment) == (segment != untagged) {
            transmit(packets, count: count, to: port, snapshot: snapshot, offloads: offloads)
            return false
        }
        return transmitRetagging(packets, count: count, to: port, snapshot: snapshot, offloads: offloads, segment: segment,
                                 frameSegments: frameSegments, untagged: untagged, tags: tags, lastUse: lastUse)
    }

    /// Pushes the tags a trunk's frames leave with and takes off those an untagged port must
    /// not see, sends, and (unless `lastUse`) puts every frame back as it was.
    @inline(never)
    private func transmitRetagging(_ packets: UnsafeMutablePointer<PacketBuffer>, count: Int, to port: Int, snapshot: PollSnapshot,
                                   offloads: Bool, segment: Int, frameSegments: UnsafeMutablePointer<Int>, untagged: Int,
                                   tags: TagState, lastUse: Bool) -> Bool {
        var changed = false
        for j in 0..<count {
            let frameSegment = segment >= 0 ? segment : frameSegments[j]
            let wantsTag = frameSegment != untagged
            let hasTag = tags.hasTag(frameSegment)
            if wantsTag && !hasTag {
                VLANTag.push(&packets[j], vid: frameSegment)
                changed = true
            } else if hasTag && !wantsTag {
                VLANTag.popChecked(&packets[j])
                changed = true
            }
        }
        transmit(packets, count: count, to: port, snapshot: snapshot, offloads: offloads)
        if lastUse || !changed { return changed }
        for j in 0..<count {
            let frameSegment = segment >= 0 ? segment : frameSegments[j]
            let wantsTag = frameSegment != untagged
            let hasTag = tags.hasTag(frameSegment)
            if wantsTag && !hasTag {
                VLANTag.unpush(&packets[j])
            } else if hasTag && !wantsTag {
                VLANTag.push(&packets[j], vid: frameSegment)
            }
        }
        return false
    }

    @inline(__always)
    private func transmit(_ packets: UnsafeMutablePointer<PacketBuffer>, count: Int, to port: Int, snapshot: PollSnapshot,
                          offloads: Bool) {
        let target = snapshot.targets[port]
        guard target.driver != nil else {
            if target.isPresent { counters.add(.dropsRingNotReady, of: port, UInt64(count)) }
            return
        }
        if offloads && target.acceptedOffloads != OffloadResolver.everyGuestOffload {
            transmitResolvingOffloads(packets, count: count, to: port, target: target, snapshot: snapshot)
            return
        }
        let delivered = enqueue(packets, count: count, to: target, snapshot: snapshot)
        counters.add(.txPackets, of: port, UInt64(delivered))
        if delivered != count { counters.add(.txDropped, of: port, UInt64(count &- delivered)) }
    }

    /// The slow path: a burst with checksum or segmentation requests for a destination
    /// that lacks some of those offloads.
    @inline(never)
    private func transmitResolvingOffloads(_ packets: UnsafeMutablePointer<PacketBuffer>, count: Int, to port: Int,
                                           target: TransmitTarget, snapshot: PollSnapshot) {
        var totals = OffloadResolver.Totals()
        resolver.resolve(packets, count: count, accepted: target.acceptedOffloads, totals: &totals) { batch, batchCount in
            enqueue(batch, count: batchCount, to: target, snapshot: snapshot)
        }
        counters.add(.txPackets, of: port, UInt64(totals.delivered))
        if totals.delivered != totals.offered { counters.add(.txDropped, of: port, UInt64(totals.offered &- totals.delivered)) }
        if totals.checksumsCompleted != 0 { counters.add(.offloadChecksumsCompleted, of: port, totals.checksumsCompleted) }
        if totals.framesSegmented != 0 {
            counters.add(.offloadFramesSegmented, of: port, totals.framesSegmented)
            counters.add(.offloadSegments, of: port, totals.segments)
        }
        if totals.dropsMalformed != 0 { counters.add(.dropsOffloadMalformed, of: port, totals.dropsMalformed) }
    }

    /// Hands `count` frames to the target's ring or kernel socket, or spreads them by flow
    /// over a multiqueue guest's receive rings; returns how many were taken.
    @inline(__always)
    private func enqueue(_ packets: UnsafeMutablePointer<PacketBuffer>, count: Int, to target: TransmitTarget,
                         snapshot: PollSnapshot) -> Int {
        if target.ringCount > 1 {
            // Unsafe: firstRing + ringCount lies inside the snapshot's rings (built together).
            return steering.send(packets, count: count, rings: snapshot.rings.baseAddress! + target.firstRing, ringCount: target.ringCount)
        }
        // Unsafe (guaranteed refs): the snapshot keeps rings, ports and locks alive.
        target.lock?._withUnsafeGuaranteedRef { $0.lock() }
        defer { target.lock?._withUnsafeGuaranteedRef { $0.unlock() } }
        return target.driver?.transmitBurst(packets, count: count) ?? 0
    }
}

/// Whether a burst loop applies a port policy, and its per-frame limits: the three
/// specializations of `BurstForwarder`'s loop.
protocol PolicyMode {
    static var appliesPolicy: Bool { get }
    /// Allowed source MACs, rate limit, storm control (`PortRules.hasLimits`).
    static var appliesLimits: Bool { get }
}
/// The default policy: default segment, frames as they are, no limits.
enum DefaultPolicy: PolicyMode {
    static var appliesPolicy: Bool { false }
    static var appliesLimits: Bool { false }
}
/// A VLAN access port or trunk and nothing else: segments without the limits' per-frame checks.
enum SegmentPolicy: PolicyMode {
    static var appliesPolicy: Bool { true }
    static var appliesLimits: Bool { false }
}
/// Any other policy: segments, allowed MACs, limits.
enum PortPolicyApplied: PolicyMode {
    static var appliesPolicy: Bool { true }
    static var appliesLimits: Bool { true }
}
