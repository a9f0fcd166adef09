import Synchronization
import VhostSystem
import VhostUser
import Virtio

/// The L2 switch: ports, their queues, the MAC table and the poll threads that forward
/// between them. Reconfiguration (a port added or removed, a device's rings changed) is
/// done by building new per-thread snapshots, publishing them and waiting for a grace
/// period before anything old is released: forwarding on other ports never pauses.
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

        public init() {}
    }

    /// Where each receive queue is served, for the management plane.
    public struct QueueAssignment: Sendable, Equatable {
        public var portName: String
        public var vringIndex: Int
        public var pollThread: Int
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
        var packetPort: PacketSocketPort?
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
            state.ports[id] = PortEntry(id: id, name: name, maxFrameLength: maxFrameLength, queues: [], packetPort: nil,
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
    /// takes effect within one burst and never touches the port's rings or socket. When the
    /// port's segments, allowed MACs or MAC limit change, the MACs it learned go too (learned
    /// in a segment it may have left, or from a MAC it may no longer use); they are learned
    /// again from the next frame.
    public func setPolicy(portID: Int, _ policy: PortPolicy) {
        state.withLock { state in
            guard let old = state.ports[portID]?.policy else { return }
            state.lastPolicyGeneration += 1
            state.ports[portID]?.policy = policy
            state.ports[portID]?.policyGeneration = state.lastPolicyGeneration
            // MACs learned under the old policy go once no thread applies it (after a grace
            // period); without that need the change publishes without waiting.
            let forgetsMACs = old.vlan != policy.vlan || old.trunk != policy.trunk || old.allowedMACs != policy.allowedMACs
                || policy.maxMACs < old.maxMACs
            republish(&state, freesNothing: !forgetsMACs, onlyChanging: portID)
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

    /// Replaces a kernel port's socket (nil: the interface is gone). Returns once no poll
    /// thread uses the old one.
    public func setPacketPort(portID: Int, port: PacketSocketPort?) {
        state.withLock { state in
            guard state.ports[portID] != nil else { return }
            state.ports[portID]?.packetPort = port
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
            republish(&state, onlyChanging: removed.queues.isEmpty && removed.packetPort == nil ? id : nil)
            state.ids.release(id)
            // No thread reaches the port any more: its id can be reused from a clean slate.
            fdb.flush(port: id)
            for thread in threads { thread.counters.reset(row: id) }
        }
    }

    public var queueAssignments: [QueueAssignment] { state.withLock { $0.assignments } }

    public var pollThreadStatistics: [PollThreadStatistics.Snapshot] { threads.map { $0.statistics.snapshot() } }

    public func portName(id: Int) -> String? { state.withLock { $0.ports[id]?.name } }

    /// Builds every thread's snapshot from `state`, publishes them, waits for a grace
    /// period and only then releases the previous snapshots. With `freesNothing` (the change
    /// removes no ring, socket or memory the caller will free next) and the queue placement
    /// unchanged, it returns at once and the previous snapshots wait in `retired`: creating
    /// a port or changing a policy never waits for the poll threads.
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
           state.ports[changed].map({ $0.queues.isEmpty && $0.packetPort == nil }) ?? true {
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

        // Receive side: every guest transmit ring goes to one thread, round-robin.
        var polled = [[PolledQueue]](repeating: [], count: threadCount)
        var assignments: [QueueAssignment] = []
        var owners: [AnyObject] = []
        var next = 0
        for port in ports {
            for active in port.queues where active.isGuestTransmit {
                polled[next % threadCount].append(PolledQueue(driver: PortDriver(active.queue), portID: port.id,
                                                              wakeDescriptor: active.kickDescriptor, maxFrameLength: port.maxFrameLength))
                assignments.append(QueueAssignment(portName: port.name, vringIndex: active.vringIndex, pollThread: next % threadCount))
                owners.append(active.queue.object)
                next += 1
            }
            if let packetPort = port.packetPort {
                // One reader per receive ring: the whole port goes to one thread.
                polled[next % threadCount].append(PolledQueue(driver: PortDriver(packetPort), portID: port.id,
                                                              wakeDescriptor: packetPort.pollDescriptor, maxFrameLength: port.maxFrameLength))
                assignments.append(QueueAssignment(portName: port.name, vringIndex: 0, pollThread: next % threadCount))
                owners.append(packetPort)
                next += 1
            }
        }

        // Transmit side: thread t uses receive ring t mod n of each port; a ring used by
        // more than one thread gets a lock that stays the same object while the ring lives.
        var locks: [ObjectIdentifier: TransmitLock] = [:]
        var targets = [[TransmitTarget]](repeating: [TransmitTarget](repeating: .absent, count: maxID), count: threadCount)
        for port in ports {
            let receiveRings = port.queues.filter { !$0.isGuestTransmit }
            for t in 0..<threadCount {
                targets[t][port.id].isPresent = true
                if let packetPort = port.packetPort {
                    targets[t][port.id].driver = PortDriver(packetPort)
                    targets[t][port.id].acceptedOffloads = packetPort.acceptedOffloadFeatures
                    owners.append(packetPort)
                    if threadCount > 1 {
                        let key = ObjectIdentifier(packetPort)
                        let lock = locks[key] ?? state.transmitLocks[key] ?? TransmitLock()
                        locks[key] = lock
                        targets[t][port.id].lock = Unmanaged.passUnretained(lock)
                        owners.append(lock)
                    }
                    continue
                }
                guard !receiveRings.isEmpty else { continue }
                let queue = receiveRings[t % receiveRings.count].queue
                targets[t][port.id].driver = PortDriver(queue)
                targets[t][port.id].acceptedOffloads = queue.negotiatedFeatures & OffloadResolver.everyGuestOffload
                let ring = queue.object
                owners.append(ring)
                if threadCount > receiveRings.count {
                    let key = ObjectIdentifier(ring)
                    let lock = locks[key] ?? state.transmitLocks[key] ?? TransmitLock()
                    locks[key] = lock
                    targets[t][port.id].lock = Unmanaged.passUnretained(lock)
                    owners.append(lock)
                }
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
            PollSnapshot(queues: polled[t], targets: targets[t], presentPorts: present, rules: rules[t], owners: owners)
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
