import Synchronization
import VhostSystem
import VhostUser
import Virtio

/// The L2 switch: ports, their queues, the MAC table and the poll threads that forward
/// between them. Reconfiguration (a port added or removed, a device's rings changed) is
/// done by building new per-thread snapshots, publishing them and waiting for a grace
/// period before anything old is released: forwarding on other ports never pauses.
///
/// Why one long file: every path that changes what the poll threads see (ports, queues,
/// kernel sockets, policies, receive placement and its balancing, the hand-over's pause)
/// goes through the one private `State` and its `republish`; split into extensions, that
/// state and the snapshot building would have to be visible to the whole module.
public final class Switch: @unchecked Sendable {
    public struct Configuration: Sendable {
        public var pollThreads = 1
        public var pollThreadCPUs: [Int] = []
        public var busyPoll = false
        /// Adaptive polling: empty iterations before a poll thread sleeps until a kick.
        /// Fewer leave more CPU to guests on a shared host, at the cost of wake-up latency.
        public var idlePollsBeforeSleep = PollThread.defaultIdleIterationsBeforeSleep
        public var macTableCapacity = 8192
        public var macAgingSeconds: UInt32 = 300
        /// Automatic rx-queue balancing: at most this often (0: never), the queues not pinned by
        /// `rxq_affinity` are placed again by the busy cycles each cost since the last look
        /// (`RxqBalancer`), when that lowers the busiest thread's load by `rxqRebalanceImprovement`.
        public var rxqRebalanceIntervalSeconds = 10
        public var rxqRebalanceImprovement = 0.25

        public init() {}
    }

    /// Where each receive queue is served, for the management plane.
    public struct QueueAssignment: Sendable, Equatable {
        public var portName: String
        public var vringIndex: Int
        public var pollThread: Int
        /// Placed by the port's `rxq_affinity`, not automatically.
        public var pinned = false
    }

    /// A receive queue across republishes: its port and vring (0 for a kernel port's socket).
    struct ReceiveQueueKey: Hashable {
        var portID: Int
        var vringIndex: Int
    }

    /// Port ids index the per-thread counter blocks and the MAC table's port field.
    public static let maxPorts = 4096

    public let configuration: Configuration
    public let fdb: MacLearningTable
    private let threads: [PollThread]
    private let state = Mutex(State())
    private let injections = InjectionQueue()
    private var housekeeping: SystemThread?
    private let housekeepingStop: EventFD

    private struct PortEntry {
        var id: Int
        var name: String
        var maxFrameLength: Int
        var queues: [ActiveQueue]
        var kernelPort: KernelPort?
        var policy = PortPolicy()
        /// Changes with each policy, so the poll threads' limiters start afresh.
        var policyGeneration: UInt64 = 0
    }

    private struct State {
        var ports: [Int: PortEntry] = [:]
        var transmitLocks: [ObjectIdentifier: TransmitLock] = [:]
        var assignments: [QueueAssignment] = []
        var housekeepingTasks: [@Sendable () -> Void] = []
        /// Snapshots replaced by a change that frees nothing (a port added, a policy set):
        /// released after the next grace period, by the next republish or housekeeping.
        var retired: [Unmanaged<PollSnapshot>] = []
        var lastPolicyGeneration: UInt64 = 0
        var ids = PortIDAllocator(limit: Switch.maxPorts)
        /// The snapshots last published, one per thread: a change to one port with no
        /// queues (created, deleted, a new policy) patches them instead of rebuilding all.
        var published: [PollSnapshot] = []
        /// Where automatic balancing put the unpinned receive queues (`rebalanceReceiveQueues`);
        /// a queue without an entry is placed round-robin.
        /// By port id (a delete drops its entry at once), then vring.
        var balancedPlacement: [Int: [Int: Int]] = [:]
        /// Each guest transmit ring's busy cycles at the last balancing look (rebuilt at each).
        var lastBusyCycles: [ReceiveQueueKey: UInt64] = [:]
        var lastRebalanceNanoseconds: UInt64 = 0
        /// `pausePolling`: the threads hold empty snapshots; changes wait for `resumePolling`.
        var paused = false
    }

    public init(configuration: Configuration = Configuration()) throws(SystemError) {
        self.configuration = configuration
        fdb = MacLearningTable(capacity: configuration.macTableCapacity, agingSeconds: configuration.macAgingSeconds)
        var threads: [PollThread] = []
        for i in 0..<max(1, configuration.pollThreads) {
            threads.append(try PollThread(index: i, fdb: fdb, busyPoll: configuration.busyPoll,
                                          idleIterationsBeforeSleep: configuration.idlePollsBeforeSleep, maxPorts: Self.maxPorts,
                                          injections: i == 0 ? injections : nil))
        }
        self.threads = threads
        housekeepingStop = try EventFD(nonBlocking: false)
        // Measured here, once, so that no API read of the worst burst time waits for it.
        _ = MonotonicClock.cyclesPerNanosecond
    }

    /// Seconds on the monotonic clock: the MAC table's time.
    @inline(__always)
    static func currentSecond() -> UInt32 {
        UInt32(truncatingIfNeeded: MonotonicClock.nanoseconds() / 1_000_000_000)
    }

    public func start() throws(SystemError) {
        for (i, thread) in threads.enumerated() {
            let cpus = configuration.pollThreadCPUs.isEmpty ? [] : [configuration.pollThreadCPUs[i % configuration.pollThreadCPUs.count]]
            try thread.start(cpus: cpus)
        }
        // Ageing runs off the hot path, once a second.
        let stopSignal = housekeepingStop
        housekeeping = try SystemThread(name: "housekeeping") { [fdb, self] in
            let epoll = try? Epoll()
            try? epoll?.add(stopSignal.rawValue, token: 0)
            var events: [Epoll.Event] = []
            while true {
                try? epoll?.wait(into: &events, timeoutMilliseconds: 1000)
                if !events.isEmpty { return }
                fdb.expire(now: Switch.currentSecond())
                self.releaseRetiredSnapshots()
                self.rebalanceReceiveQueues(now: MonotonicClock.nanoseconds())
                for task in self.state.withLock({ $0.housekeepingTasks }) { task() }
            }
        }
    }

    public func stop() {
        housekeepingStop.signal()
        housekeeping?.join()
        housekeeping = nil
        for thread in threads { thread.stop() }
        // The threads are gone: nothing holds the deferred snapshots.
        state.withLock { state in
            for old in state.retired { old.release() }
            state.retired = []
        }
    }

    /// Registers a port with no queues yet, under `policy` from its first frame; returns its
    /// id (the MAC table's port number), or nil when `maxPorts` ports exist. Frames above
    /// `mtu` + 18 bytes are dropped.
    public func addPort(name: String, mtu: Int? = nil, policy: PortPolicy = PortPolicy()) -> Int? {
        state.withLock { state in
            guard let id = state.ids.allocate() else { return nil }
            let maxFrameLength = mtu.map { $0 + 18 } ?? PacketBufferPool.bufferCapacity
            state.lastPolicyGeneration += 1
            state.ports[id] = PortEntry(id: id, name: name, maxFrameLength: maxFrameLength, queues: [], kernelPort: nil,
                                        policy: policy, policyGeneration: state.lastPolicyGeneration)
            republish(&state, freesNothing: true, onlyChanging: id)
            return id
        }
    }

    /// A port's switch-level counters, summed over poll threads.
    public func statistics(portID: Int) -> PortSwitchStatistics {
        PortSwitchStatistics(summing: threads.map(\.counters), of: portID)
    }

    /// Replaces a port's usable rings. Returns once no poll thread uses the old ones.
    public func setQueues(portID: Int, queues: [ActiveQueue]) {
        state.withLock { state in
            guard state.ports[portID] != nil else { return }
            state.ports[portID]?.queues = queues
            republish(&state)
        }
    }

    /// Live hand-over: every poll thread leaves all rings and kernel sockets (an empty
    /// snapshot each, the grace period waited) until `resumePolling`. Changes meanwhile only
    /// update the table, and `resumePolling` publishes them in one go: ports withdrawn or
    /// brought back one by one would otherwise forward to a port whose rings are not there
    /// (`ring_not_ready` drops).
    public func pausePolling() {
        state.withLock { state in
            guard !state.paused else { return }
            state.paused = true
            let empty = PollSnapshot(queues: [], targets: [], presentPorts: [], owners: [])
            var retired = state.retired
            state.retired = []
            for thread in threads {
                if let old = thread.exchange(empty) { retired.append(old) }
            }
            for thread in threads { thread.waitForQuiescentPoint() }
            for old in retired { old.release() }
            state.published = []
        }
    }

    /// Ends `pausePolling`: the table as it is now goes to the poll threads.
    public func resumePolling() {
        state.withLock { state in
            guard state.paused else { return }
            state.paused = false
            republish(&state)
        }
    }

    /// Replaces a port's segment and port-security settings (`policy.problem` must be nil);
    /// returns once every poll thread applies it, and never touches the port's rings or socket. When the
    /// port's segments, allowed MACs or MAC limit change, the MACs it learned go too (learned
    /// in a segment it may have left, or from a MAC it may no longer use); they are learned
    /// again from the next frame.
    public func setPolicy(portID: Int, _ policy: PortPolicy) {
        state.withLock { state in
            guard let old = state.ports[portID]?.policy else { return }
            state.lastPolicyGeneration += 1
            state.ports[portID]?.policy = policy
            state.ports[portID]?.policyGeneration = state.lastPolicyGeneration
            // Waits for a grace period: once this returns no poll thread applies the old policy,
            // so a frame sent after the API's answer meets the new rules (a tightened
            // allow-list or rate limit holds from then on; a new bucket starts full), and MACs
            // learned under the old policy can be forgotten for good.
            let forgetsMACs = old.vlan != policy.vlan || old.trunk != policy.trunk || old.allowedMACs != policy.allowedMACs
                || policy.maxMACs < old.maxMACs
            republish(&state, onlyChanging: portID)
            if forgetsMACs { fdb.flush(port: portID) }
        }
    }

    /// Drops per segment (VLAN) summed over poll threads, for the segments with any.
    public func segmentStatistics() -> [SegmentStatistics] {
        var result: [SegmentStatistics] = []
        let blocks = threads.map(\.segmentCounters)
        for segment in 0..<MacLearningTable.segmentCount where !blocks.allSatisfy({ $0.rowIsZero(segment) }) {
            let drops = SegmentDropStatistics(summing: blocks, of: segment)
            if !drops.isZero { result.append(SegmentStatistics(segment: segment, drops: drops)) }
        }
        return result
    }

    /// Replaces a kernel port's sockets (nil: the interface is gone). Returns once no poll
    /// thread uses the old ones.
    public func setKernelPort(portID: Int, port: KernelPort?) {
        state.withLock { state in
            guard state.ports[portID] != nil else { return }
            state.ports[portID]?.kernelPort = port
            republish(&state)
        }
    }

    /// Sends `frame` as if it had arrived on `portID`: learned and flooded as usual. For
    /// frames the switch makes itself (the RARP of a migrated guest).
    /// Queues a frame the switch makes (a RARP) as if it came from `portID`; false when the
    /// bounded queue is full (the frame is dropped).
    @discardableResult
    public func inject(frame: [UInt8], fromPort portID: Int) -> Bool {
        guard injections.add(InjectionQueue.Frame(portID: portID, bytes: frame)) else { return false }
        threads[0].wake()
        return true
    }

    /// Runs `task` about once a second on the housekeeping thread (link supervision).
    public func addHousekeepingTask(_ task: @escaping @Sendable () -> Void) {
        state.withLock { $0.housekeepingTasks.append(task) }
    }

    /// Removes a port; returns once no poll thread can reach it. Its MAC entries go too.
    public func removePort(id: Int) {
        state.withLock { state in
            guard let removed = state.ports.removeValue(forKey: id) else { return }
            republish(&state, onlyChanging: removed.queues.isEmpty && removed.kernelPort == nil ? id : nil)
            state.ids.release(id)
            state.balancedPlacement[id] = nil
            // No thread reaches the port any more: its id can be reused from a clean slate.
            fdb.flush(port: id)
            for thread in threads { thread.counters.reset(row: id) }
        }
    }

    public var queueAssignments: [QueueAssignment] { state.withLock { $0.assignments } }

    public var pollThreadCount: Int { threads.count }

    public var pollThreadStatistics: [PollThreadStatistics.Snapshot] { threads.map { $0.statistics.snapshot() } }

    public func portName(id: Int) -> String? { state.withLock { $0.ports[id]?.name } }

    /// Builds every thread's snapshot from `state`, publishes them, waits for a grace
    /// period and only then releases the previous snapshots. With `freesNothing` (the change
    /// removes no ring, socket or memory the caller will free next) and the queue placement
    /// unchanged, it returns at once and the previous snapshots wait in `retired`: creating
    /// a port never waits for the poll threads. A policy change does wait (`setPolicy`), so
    /// the frames after its return meet the new rules.
    ///
    /// `onlyChanging`: the one port the change touched, when it had no queues and no packet
    /// socket before and has none after (created, deleted after its rings went, or a new
    /// policy). Then no queue moves and the previous snapshots are patched for that port
    /// alone (`PollSnapshot.replacingPort`: memcpy of the other ports' entries) instead of
    /// rebuilt port by port: the cost of a change does not grow with the number of ports.
    private func republish(_ state: inout State, freesNothing: Bool = false, onlyChanging changed: Int? = nil) {
        // Paused: no thread holds anything; `resumePolling` publishes the result.
        guard !state.paused else { return }
        if let changed, state.published.count == threads.count,
           state.ports[changed].map({ $0.queues.isEmpty && $0.kernelPort == nil }) ?? true {
            let entry = state.ports[changed].map { port in
                (target: TransmitTarget(driver: nil, lock: nil, isPresent: true),
                 rules: PortRulesTable.Entry(policy: port.policy, generation: port.policyGeneration, share: (0, 0)))
            }
            publish(state.published.map { $0.replacingPort(changed, with: entry) }, &state,
                    freesNothing: freesNothing, placementUnchanged: true, ringsUnchanged: true)
            return
        }
        let (snapshots, placementUnchanged) = buildSnapshots(&state)
        publish(snapshots, &state, freesNothing: freesNothing, placementUnchanged: placementUnchanged, ringsUnchanged: false)
    }

    /// Every thread's snapshot built from `state`, port by port (the queue placement and
    /// transmit locks are updated in `state`); whether the placement stayed the same.
    private func buildSnapshots(_ state: inout State) -> ([PollSnapshot], placementUnchanged: Bool) {
        // In id order without a sort (ids are dense: the lowest free one is reused).
        let highestID = state.ports.keys.max() ?? -1
        let ports = highestID < 0 ? [] : (0...highestID).compactMap { state.ports[$0] }
        let threadCount = threads.count
        let maxID = (ports.last?.id ?? -1) + 1

        // Receive side: every guest transmit ring (and packet socket) goes to one thread: the
        // one its port's `rxq_affinity` names, else where balancing put it, else round-robin.
        var polled = [[PolledQueue]](repeating: [], count: threadCount)
        var assignments: [QueueAssignment] = []
        var owners: [AnyObject] = []
        var next = 0
        /// `queue`: the number `rxq_affinity` names it by (a queue pair, a socket's index).
        func place(_ queue: PolledQueue, of port: PortEntry, vringIndex: Int, queueNumber: Int, owner: AnyObject) {
            let pinned = port.policy.rxqAffinity[queueNumber].flatMap { $0 < threadCount ? $0 : nil }
            let thread: Int
            if let pinned {
                thread = pinned
            } else if let balanced = state.balancedPlacement[port.id]?[vringIndex],
                      balanced < threadCount {
                thread = balanced
            } else {
                thread = next % threadCount
                next += 1
            }
            polled[thread].append(queue)
            assignments.append(QueueAssignment(portName: port.name, vringIndex: vringIndex, pollThread: thread, pinned: pinned != nil))
            owners.append(owner)
        }
        for port in ports {
            for active in port.queues where active.isGuestTransmit {
                place(PolledQueue(driver: PortDriver(active.queue), portID: port.id, wakeDescriptor: active.kickDescriptor,
                                  maxFrameLength: port.maxFrameLength), of: port, vringIndex: active.vringIndex,
                      queueNumber: active.queuePair, owner: active.queue.object)
            }
            // One reader per socket's receive ring (shown as the port's vring `index`).
            for (index, channel) in (port.kernelPort?.channels ?? []).enumerated() {
                place(PolledQueue(driver: channel.driver, portID: port.id, wakeDescriptor: channel.pollDescriptor,
                                  maxFrameLength: port.maxFrameLength), of: port, vringIndex: index, queueNumber: index,
                      owner: channel.object)
            }
        }

        // Transmit side: a guest with one receive ring gets every thread's frames there; one
        // with several gets them spread by flow hash over all of them (`TransmitSteering`), so
        // any thread may reach any ring. With more than one thread every ring (and packet
        // socket) has a lock, the same object for all threads while the ring lives.
        var locks: [ObjectIdentifier: TransmitLock] = [:]
        func sharedLock(_ object: AnyObject) -> Unmanaged<TransmitLock>? {
            guard threadCount > 1 else { return nil }
            let key = ObjectIdentifier(object)
            let lock = locks[key] ?? state.transmitLocks[key] ?? TransmitLock()
            locks[key] = lock
            owners.append(lock)
            return Unmanaged.passUnretained(lock)
        }
        var targets = [[TransmitTarget]](repeating: [TransmitTarget](repeating: .absent, count: maxID), count: threadCount)
        var rings = [[SteeredRing]](repeating: [], count: threadCount)
        for port in ports {
            // At most the limit `TransmitSteering` sorts by (devices never have more).
            let receiveRings = port.queues.filter { !$0.isGuestTransmit }.prefix(PortSpec.maxQueuePairs)
            for t in 0..<threadCount {
                targets[t][port.id].isPresent = true
                if let kernelPort = port.kernelPort {
                    // Thread t sends through socket t mod n: locked only when threads share one.
                    let channels = kernelPort.channels
                    let channel = channels[t % channels.count]
                    targets[t][port.id].driver = channel.driver
                    targets[t][port.id].acceptedOffloads = kernelPort.acceptedOffloadFeatures
                    if channels.count < threadCount { targets[t][port.id].lock = sharedLock(channel.object) }
                    owners.append(channel.object)
                    continue
                }
                guard let first = receiveRings.first?.queue else { continue }
                targets[t][port.id].driver = PortDriver(first)
                targets[t][port.id].acceptedOffloads = first.negotiatedFeatures & OffloadResolver.everyGuestOffload
                targets[t][port.id].lock = sharedLock(first.object)
                if receiveRings.count > 1 {
                    targets[t][port.id].firstRing = rings[t].count
                    targets[t][port.id].ringCount = receiveRings.count
                    for ring in receiveRings {
                        rings[t].append(SteeredRing(driver: PortDriver(ring.queue), lock: sharedLock(ring.queue.object)))
                        owners.append(ring.queue.object)
                    }
                }
                owners.append(first.object)
            }
        }
        let placementUnchanged = assignments == state.assignments
        state.transmitLocks = locks
        state.assignments = assignments
        let present = ports.map(\.id)

        // Rules per thread: a port's limits are shared among the threads serving its queues.
        var served = [[Int: Int]](repeating: [:], count: threadCount)
        var totals: [Int: Int] = [:]
        for (t, queues) in polled.enumerated() {
            for queue in queues {
                served[t][queue.portID, default: 0] += 1
                totals[queue.portID, default: 0] += 1
            }
        }
        let rules = (0..<threadCount).map { t in
            PortRulesTable((0..<maxID).map { id in
                state.ports[id].map { port in
                    PortRulesTable.Entry(policy: port.policy, generation: port.policyGeneration,
                                         share: (served[t][id] ?? 0, totals[id] ?? 0))
                }
            })
        }

        let snapshots = (0..<threadCount).map { t in
            PollSnapshot(queues: polled[t], targets: targets[t], rings: rings[t], presentPorts: present, rules: rules[t], owners: owners)
        }
        return (snapshots, placementUnchanged)
    }

    /// Publishes one snapshot per thread (see `republish`). `ringsUnchanged`: every thread
    /// polls and sends to the same rings and sockets as before, under the same locks.
    private func publish(_ snapshots: [PollSnapshot], _ state: inout State, freesNothing: Bool, placementUnchanged: Bool,
                         ringsUnchanged: Bool) {
        state.published = snapshots
        if freesNothing && placementUnchanged {
            for (thread, snapshot) in zip(threads, snapshots) {
                if let old = thread.exchange(snapshot) { state.retired.append(old) }
            }
            return
        }
        var retired: [Unmanaged<PollSnapshot>] = state.retired
        state.retired = []
        if threads.count > 1 && !ringsUnchanged {
            // Two phases: the new assignment may move a guest ring or a packet socket to
            // another thread, or change which threads share a receive ring and whether they
            // lock it. Published directly, the new owner could start on a ring while the old
            // one still finishes a burst on it from its old snapshot (the same heads taken
            // twice, the used index raced). So every thread first leaves its old snapshot
            // for an empty one.
            let empty = PollSnapshot(queues: [], targets: [], presentPorts: [], owners: [])
            for thread in threads {
                if let old = thread.exchange(empty) { retired.append(old) }
            }
            for thread in threads { thread.waitForQuiescentPoint() }
        }
        for (thread, snapshot) in zip(threads, snapshots) {
            if let old = thread.exchange(snapshot) { retired.append(old) }
        }
        for thread in threads { thread.waitForQuiescentPoint() }
        for old in retired { old.release() }
    }

    /// Automatic rx-queue balancing (housekeeping, about once a second): at most every
    /// `rxqRebalanceIntervalSeconds`, the busy cycles each receive queue (a guest transmit
    /// ring, a kernel port's socket) cost since the last look are its load (`RxqBalancer`);
    /// when placing the unpinned queues again lowers the busiest thread's load by
    /// `rxqRebalanceImprovement`, the new placement is published (a republish: rings move
    /// between threads only through the empty snapshot). Skipped while a reconfiguration
    /// holds the state.
    private func rebalanceReceiveQueues(now: UInt64) {
        let interval = UInt64(max(0, configuration.rxqRebalanceIntervalSeconds)) * 1_000_000_000
        guard threads.count > 1, interval > 0 else { return }
        state.withLockIfAvailable { state in
            guard now &- state.lastRebalanceNanoseconds >= interval else { return }
            state.lastRebalanceNanoseconds = now
            var keys: [ReceiveQueueKey] = []
            var queues: [RxqBalancer.Queue] = []
            var current: [Int] = []
            var busyCycles: [ReceiveQueueKey: UInt64] = [:]
            var placed: [String: [Int: QueueAssignment]] = [:]
            for assignment in state.assignments { placed[assignment.portName, default: [:]][assignment.vringIndex] = assignment }
            for port in state.ports.values.sorted(by: { $0.id < $1.id }) {
                // Each receive queue by the vring index it is placed under, with its cycles so far.
                let measured = port.queues.filter(\.isGuestTransmit).map { ($0.vringIndex, $0.queue.statistics.snapshot().busyCycles) }
                    + (port.kernelPort?.statistics ?? []).enumerated().map { ($0, $1.snapshot().receiveBusyCycles) }
                for (vringIndex, total) in measured {
                    let key = ReceiveQueueKey(portID: port.id, vringIndex: vringIndex)
                    guard let thread = placed[port.name]?[vringIndex] else { continue }
                    busyCycles[key] = total
                    let last = state.lastBusyCycles[key] ?? 0
                    keys.append(key)
                    queues.append(RxqBalancer.Queue(load: total >= last ? total - last : total,
                                                    pinnedThread: thread.pinned ? thread.pollThread : nil))
                    current.append(thread.pollThread)
                }
            }
            state.lastBusyCycles = busyCycles
            guard let placement = RxqBalancer.rebalanced(queues, current: current, threads: threads.count,
                                                         improvement: configuration.rxqRebalanceImprovement) else { return }
            for (index, key) in keys.enumerated() where queues[index].pinnedThread == nil {
                state.balancedPlacement[key.portID, default: [:]][key.vringIndex] = placement[index]
            }
            republish(&state, freesNothing: true)
        }
    }

    /// The snapshots last published, and the ones a build from scratch would make now: the
    /// same tables, whichever way the published ones were made (`IncrementalRepublishTests`).
    var publishedAndRebuiltSnapshots: (published: [PollSnapshot], rebuilt: [PollSnapshot]) {
        state.withLock { state in
            var copy = state
            return (state.published, buildSnapshots(&copy).0)
        }
    }

    /// Releases the snapshots deferred by `republish(freesNothing:)` once no poll thread can
    /// hold them (housekeeping, about once a second). Skipped while a reconfiguration holds
    /// the state (the next waiting republish or tick releases them): housekeeping never
    /// queues behind a grace period, and never takes the lock through the kernel, whose
    /// hand-over ThreadSanitizer cannot see.
    private func releaseRetiredSnapshots() {
        state.withLockIfAvailable { state in
            guard !state.retired.isEmpty else { return }
            for thread in threads { thread.waitForQuiescentPoint() }
            for old in state.retired { old.release() }
            state.retired = []
        }
    }
}
