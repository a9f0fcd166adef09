import Synchronization
import CVhostShims
import VhostSystem
import Virtio

/// A busy-polling ("PMD") thread: serves its assigned receive queues round-robin in bursts
/// of 32, and takes part in read-copy-update so the control side knows when an old
/// snapshot is no longer in use.
///
/// Adaptive mode: after `idleIterationsBeforeSleep` empty iterations the thread asks the
/// guests to kick, re-checks the rings (a frame that arrived meanwhile must not wait),
/// goes offline and sleeps in epoll on the kick eventfds; the first wake-up brings it back
/// to busy polling.
final class PollThread: @unchecked Sendable {
    let index: Int
    let statistics = PollThreadStatistics()
    let counters: PortCounters
    let segmentCounters = SegmentCounters()
    private let limiters: PortLimiters
    /// Bits of an `Unmanaged<PollSnapshot>` retained by the Switch; 0 before the first publish.
    private let published = Atomic<UInt>(0)
    /// Advanced after every iteration, once the iteration no longer touches its snapshot.
    let quiescentCounter = Atomic<UInt64>(0)
    /// False before start, while sleeping and after exit: such a thread holds no snapshot.
    let online = Atomic<Bool>(false)
    private let stopRequested = Atomic<Bool>(false)

    private let fdb: MacLearningTable
    private let busyPoll: Bool
    private let idleIterationsBeforeSleep: Int
    private let epoll: Epoll
    private let wakeup: EventFD
    private var registeredKicks: Set<Int32> = []
    private var thread: SystemThread?

    static let defaultIdleIterationsBeforeSleep = 20_000
    /// Only a safety net: kicks, socket data and reconfiguration wake the thread at once.
    static let sleepTimeoutMilliseconds: Int32 = 1000
    private static let wakeupToken = UInt64.max

    /// Served by thread 0 only; unmanaged so the per-iteration check costs no retain.
    private let injections: InjectionQueue?
    private let injectionsReference: Unmanaged<InjectionQueue>?

    init(index: Int, fdb: MacLearningTable, busyPoll: Bool, idleIterationsBeforeSleep: Int = PollThread.defaultIdleIterationsBeforeSleep,
         maxPorts: Int, injections: InjectionQueue?) throws(SystemError) {
        self.index = index
        self.idleIterationsBeforeSleep = max(1, idleIterationsBeforeSleep)
        self.injections = injections
        injectionsReference = injections.map { Unmanaged.passUnretained($0) }
        counters = PortCounters(rows: maxPorts)
        limiters = PortLimiters(maxPorts: maxPorts)
        self.fdb = fdb
        self.busyPoll = busyPoll
        epoll = try Epoll()
        wakeup = try EventFD()
        try epoll.add(wakeup.rawValue, token: Self.wakeupToken)
    }

    func start(cpus: [Int]) throws(SystemError) {
        let pool = try PacketBufferPool()
        let resolver = try OffloadResolver()
        thread = try SystemThread(name: "pmd\(index)", cpus: cpus) { [self] in
            run(pool: pool, resolver: resolver)
        }
    }

    /// Asks the loop to exit and waits for it.
    func stop() {
        stopRequested.store(true, ordering: .sequentiallyConsistent)
        wakeup.signal()
        thread?.join()
        thread = nil
    }

    /// Installs `snapshot` (retained) and returns the previous one, which the caller
    /// releases only after a grace period. Called on the control side, serialized.
    func exchange(_ snapshot: PollSnapshot) -> Unmanaged<PollSnapshot>? {
        let bits = UInt(bitPattern: Unmanaged.passRetained(snapshot).toOpaque())
        let old = published.exchange(bits, ordering: .sequentiallyConsistent)
        updateKickRegistrations(snapshot)
        wakeup.signal()
        guard old != 0, let pointer = UnsafeRawPointer(bitPattern: old) else { return nil }
        return Unmanaged<PollSnapshot>.fromOpaque(pointer)
    }

    /// The sleeping thread must wake on its queues' kicks and packet sockets (epoll_ctl is
    /// thread-safe). Everything is re-registered: an fd number can have been closed with an
    /// old snapshot and reused since. Edge-triggered: the thread never reads these fds.
    /// A busy-polling thread never sleeps, so it registers nothing: an epoll entry on a
    /// packet socket makes the kernel take the socket's wait-queue lock and run our
    /// callback for every frame it frees (about 4% of the cycles of vhost->kernel).
    private func updateKickRegistrations(_ snapshot: PollSnapshot) {
        for fd in registeredKicks { epoll.remove(fd) }
        registeredKicks = []
        guard !busyPoll else { return }
        for i in 0..<snapshot.queues.count {
            let fd = snapshot.queues[i].wakeDescriptor
            guard fd >= 0 else { continue }
            try? epoll.add(fd, events: Epoll.input | Epoll.edgeTriggered, token: UInt64(UInt32(bitPattern: fd)))
            registeredKicks.insert(fd)
        }
    }

    /// Returns once this thread has passed a quiescent point (or is offline) after the
    /// caller's last `exchange`.
    func waitForQuiescentPoint() {
        let seen = quiescentCounter.load(ordering: .sequentiallyConsistent)
        while online.load(ordering: .sequentiallyConsistent)
                && quiescentCounter.load(ordering: .sequentiallyConsistent) == seen {
            usleep(20)
        }
    }

    private func run(pool: PacketBufferPool, resolver: OffloadResolver) {
        online.store(true, ordering: .sequentiallyConsistent)
        let forwarder = BurstForwarder(fdb: fdb, pool: pool, resolver: resolver, counters: counters,
                                       segmentCounters: segmentCounters, limiters: limiters)
        defer {
            forwarder.release()
            online.store(false, ordering: .sequentiallyConsistent)
        }
        var idleIterations = 0
        var notificationsEnabled = false
        var installedBits: UInt = 0
        var timer = IterationTimer()
        var events: [Epoll.Event] = []
        events.reserveCapacity(64)
        while !stopRequested.load(ordering: .relaxed) {
            let bits = published.load(ordering: .sequentiallyConsistent)
            var moved = 0
            var shouldSleep = false
            if let pointer = UnsafeRawPointer(bitPattern: bits) {
                // Unsafe: the Switch keeps the snapshot retained until this thread passes a
                // quiescent point, so borrowing it without a retain is safe here.
                Unmanaged<PollSnapshot>.fromOpaque(pointer)._withUnsafeGuaranteedRef { snapshot in
                    if bits != installedBits {
                        // A ring may come from a thread that slept with kicks enabled on it.
                        notificationsEnabled = true
                        installedBits = bits
                    }
                    if notificationsEnabled {
                        for q in 0..<snapshot.queues.count { snapshot.queues[q].driver?.armWakeups(false) }
                        notificationsEnabled = false
                    }
                    moved = pollOnce(snapshot, forwarder: forwarder, cycles: timer.iterationStartCycles)
                    // Not into the empty snapshot of a two-phase republish: the frames wait for the next.
                    if snapshot.presentPorts.count > 0, let pending = injectionsReference,
                       pending._withUnsafeGuaranteedRef({ $0.hasFrames }) {
                        moved &+= inject(pending.takeUnretainedValue(), snapshot: snapshot, forwarder: forwarder)
                    }
                    if moved == 0 && !busyPoll && idleIterations >= idleIterationsBeforeSleep {
                        shouldSleep = prepareToSleep(snapshot)
                        notificationsEnabled = true
                    }
                }
            } else if !busyPoll {
                shouldSleep = idleIterations >= idleIterationsBeforeSleep
            }
            quiescentCounter.store(quiescentCounter.load(ordering: .relaxed) &+ 1, ordering: .sequentiallyConsistent)

            let (spent, longestGrew) = timer.endIteration()
            if longestGrew { statistics.maxIterationCycles.store(timer.longestCycles, ordering: .relaxed) }
            PollThreadStatistics.bump(statistics.iterations, by: 1)
            if moved > 0 {
                idleIterations = 0
                PollThreadStatistics.bump(statistics.busyCycles, by: spent)
                PollThreadStatistics.bump(statistics.packets, by: UInt64(moved))
            } else {
                idleIterations &+= 1
                PollThreadStatistics.bump(statistics.idleCycles, by: spent)
            }
            if shouldSleep {
                let woken = sleep(events: &events)
                // A time-out with nothing to do: one look at the rings, then back to sleep.
                idleIterations = woken ? 0 : idleIterationsBeforeSleep
                timer.resumeAfterSleep()
            }
        }
    }

    /// Serves every queue once; returns the number of packets received. `cycles`: the TSC
    /// time the iteration started, the rate limiters' clock.
    @inline(__always)
    private func pollOnce(_ snapshot: PollSnapshot, forwarder: BurstForwarder, cycles: UInt64) -> Int {
        var received = 0
        var nowSeconds: UInt32 = 0
        // One TSC read per queue that moved frames: its burst's cycles (with the empty polls
        // before it, a few dozen cycles each) are its share of the thread.
        var lastCycles = cycles
        for q in 0..<snapshot.queues.count {
            let polled = snapshot.queues[q]
            let count = polled.driver?.receiveBurst(into: forwarder.pool.buffers, maxCount: PacketBufferPool.burstSize) ?? 0
            if count == 0 { continue }
            received &+= count
            if nowSeconds == 0 { nowSeconds = Switch.currentSecond() }
            forwarder.forward(count: count, from: polled, snapshot: snapshot, now: nowSeconds, cycles: cycles)
            let now = MonotonicClock.cycles()
            polled.driver?.recordBusyCycles(now &- lastCycles)
            lastCycles = now
        }
        return received
    }

    /// Re-enables guest kicks, then checks once more: a frame posted before the guest saw
    /// the flag would otherwise wait for the next kick. Returns whether to sleep.
    private func prepareToSleep(_ snapshot: PollSnapshot) -> Bool {
        for q in 0..<snapshot.queues.count { snapshot.queues[q].driver?.armWakeups(true) }
        vhost_shims_fence_seq_cst()
        if let injections, injections.hasFrames { return false }
        for q in 0..<snapshot.queues.count {
            let polled = snapshot.queues[q]
            // A ring without a kick fd (the front-end polls) gives no wake-up: never sleep.
            if polled.wakeDescriptor < 0 { return false }
            if polled.driver?.hasPending == true { return false }
        }
        return true
    }

    /// Sends queued frames as if received on their port (flooded and learned as usual).
    private func inject(_ injections: InjectionQueue, snapshot: PollSnapshot, forwarder: BurstForwarder) -> Int {
        var sent = 0
        for frame in injections.take(max: PacketBufferPool.burstSize) {
            let buffer = forwarder.pool.buffers
            guard frame.bytes.count <= buffer.pointee.capacity, frame.bytes.count >= 14 else { continue }
            // Unsafe: the frame fits the buffer (checked above).
            frame.bytes.withUnsafeBytes { buffer.pointee.data.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
            buffer.pointee.length = frame.bytes.count
            buffer.pointee.header = VirtioNetHeader()
            let source = PolledQueue(driver: nil, portID: frame.portID, wakeDescriptor: -1, maxFrameLength: Int.max)
            forwarder.forward(count: 1, from: source, snapshot: snapshot, now: Switch.currentSecond(), cycles: MonotonicClock.cycles())
            sent += 1
        }
        return sent
    }

    /// Wakes the thread if it sleeps (new frames to inject).
    func wake() { wakeup.signal() }

    /// Returns whether something woke the thread before the time-out.
    private func sleep(events: inout [Epoll.Event]) -> Bool {
        online.store(false, ordering: .sequentiallyConsistent)
        PollThreadStatistics.bump(statistics.sleeps, by: 1)
        try? epoll.wait(into: &events, timeoutMilliseconds: Self.sleepTimeoutMilliseconds)
        if events.contains(where: { $0.token == Self.wakeupToken }) { wakeup.drain() }
        online.store(true, ordering: .sequentiallyConsistent)
        return !events.isEmpty
    }
}
