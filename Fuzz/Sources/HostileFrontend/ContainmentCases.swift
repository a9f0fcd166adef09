import Glibc
import TestSupport
import VhostSystem
import VhostUser

/// The guest-containment cases of issue 16: a hostile front-end may cost its own port, never
/// the process or its neighbours. Each runs on a fresh session like every other case and
/// keeps to tens of milliseconds, so they run every round.
func containmentCases() -> [HostileCase] {
    var cases: [HostileCase] = []
    func add(_ name: String, _ expectation: Expectation, _ run: @escaping (Context) -> Bool) {
        cases.append(HostileCase(name: name, expectation: expectation, run: run))
    }

    // --- Guest memory and dirty log shrunk under traffic (SIGBUS in the daemon unless contained)
    add("memory-shrunk-to-0", .closed) { shrinkGuestMemory($0, keepingHalf: false) }
    add("memory-shrunk-to-half", .closed) { shrinkGuestMemory($0, keepingHalf: true) }
    add("log-shrunk-to-0", .closed) { shrinkDirtyLog($0) }
    add("memory-hole-punched", .survives) { punchHoleInGuestMemory($0) }

    // --- Chains and rings: named ring-* so a run can pick the ring attacks with --case ^ring-
    add("ring-concurrent-writer", .survives) { concurrentGuestWriter($0) }
    add("ring-32768-long-chain", .survives) { hugeRings($0, .longChain) }
    add("ring-32768-indirect-max", .survives) { hugeRings($0, .indirectMax) }

    // --- Address space
    add("mem-sparse-huge-offset", .survives) { sparseHugeOffset($0, regionCount: 1) }
    add("mem-sparse-huge-offset-two-regions", .survives) { sparseHugeOffset($0, regionCount: 2) }

    // --- Sessions
    add("reconnect-at-once", .served) { reconnectAtOnce($0) }

    // --- Floods of ring-changing messages: the daemon may close the session (over its budget)
    // or serve them all; either survives, the outcome lines say which.
    add("flood-vring-enable", .survives) { ctx in
        flood(ctx) { i in .setVringEnable(FakeFrontend.vringState(index: 1, num: UInt32(i % 2))) }  // ends enabled
    }
    add("flood-log-all-toggle", .survives) { ctx in
        flood(ctx) { i in .setFeatures(FakeFrontend.u64(i % 2 == 0 ? ctx.features | 1 << 26 : ctx.features)) }  // ends off
    }
    add("flood-status-toggle", .survives) { ctx in
        flood(ctx) { i in .setStatus(FakeFrontend.u64(i % 2 == 0 ? 0x0b : Context.driverReadyStatus)) }  // DRIVER_OK off, on
    }
    add("flood-mem-hotplug-toggle", .survives) { memoryHotplugToggles($0) }
    add("flood-send-rarp", .survives) { ctx in
        var random = HostileRandom()
        return flood(ctx) { _ in .sendRarp(FakeFrontend.u64(random.next() & 0xffff_ffff_ffff)) }  // any MAC, multicast too
    }
    return cases
}

// MARK: Memory and log shrunk under traffic

/// A ready session on its own memfd sends a frame; then the file shrinks under the daemon's
/// mapping and the guest posts and kicks again. Shrunk to 0, the next avail.idx read faults
/// (nothing more can be written from here either: our mapping faults too, so the guest only
/// kicks). Shrunk to half, the rings survive but a transmit frame and a receive buffer in the
/// lost half are posted (the frame written before the shrink): the daemon's read of the frame
/// and its write of a flooded frame fault. Either way the daemon must close this session.
func shrinkGuestMemory(_ ctx: Context, keepingHalf: Bool) -> Bool {
    guard let guest = try? FakeFrontendMemory(name: "hostile-shrink") else { return false }
    let kicks = [try! EventFD(), try! EventFD()]
    guard ctx.ready(kicks, in: guest) else { return false }
    guest.postTransmit(count: 1)
    ctx.settle(kicks)
    let lostHalf = Int(guest.size) / 2
    let lostFrame = lostHalf + 0x1000
    let lostReceiveBuffer = lostHalf + 0x2000
    if keepingHalf { guest.fixture.write(FakeFrontendMemory.transmitFrame, at: UInt64(lostFrame)) }
    guest.shrink(to: keepingHalf ? lostHalf : 0)
    if keepingHalf {
        guest.postBuffer(0, address: lostReceiveBuffer, length: 2048, flags: 2)
        guest.postBuffer(1, address: lostFrame, length: FakeFrontendMemory.transmitFrame.count, flags: 0)
    }
    for kick in kicks { kick.signal() }
    return ctx.sessionClosedAndDaemonAnswers()
}

/// A ready session sends a frame; then a hole is punched in the second half of its memory
/// (fallocate: the size stays, which F_SEAL_SHRINK would allow, so a seal is no guard) with a
/// transmit frame and a receive buffer posted there. On tmpfs the pages read as zeros: the
/// daemon reads a zeroed frame and writes into a fresh page, and must survive; on hugetlbfs
/// with an empty pool the same access is a fault, contained like a shrink (unit tests).
func punchHoleInGuestMemory(_ ctx: Context) -> Bool {
    guard let guest = try? FakeFrontendMemory(name: "hostile-hole") else { return false }
    let kicks = [try! EventFD(), try! EventFD()]
    guard ctx.ready(kicks, in: guest) else { return false }
    guest.postTransmit(count: 1)
    ctx.settle(kicks)
    let half = Int(guest.size) / 2
    guest.fixture.write(FakeFrontendMemory.transmitFrame, at: UInt64(half + 0x1000))
    guard (try? guest.punchHole(offset: half, length: Int(guest.size) - half)) != nil else { return false }
    guest.postBuffer(0, address: half + 0x2000, length: 2048, flags: 2)
    guest.postBuffer(1, address: half + 0x1000, length: FakeFrontendMemory.transmitFrame.count, flags: 0)
    for kick in kicks { kick.signal() }
    ctx.settle(kicks)
    return ctx.daemon.isAlive && ctx.otherSocketAnswers()
}

/// Dirty logging on (LOG_SHMFD log in its own memfd, LOG_ALL, used rings logged) with traffic;
/// then the log file shrinks to 0 and the guest sends again: the daemon's next log write
/// faults and must cost this session only.
func shrinkDirtyLog(_ ctx: Context) -> Bool {
    let kicks = [try! EventFD(), try! EventFD()]
    guard let log = try? MemFD.create(name: "hostile-log", size: 4096),
          ctx.setMemory(), ctx.setUpRings(kicks: kicks, logUsed: true), ctx.startDriver(),
          ctx.setLogBase(log, size: 4096),
          ctx.c.ack(.setFeatures, FakeFrontend.u64(ctx.features | 1 << 26)) == 0 else { return false }
    ctx.memory.postTransmit(count: 4)
    ctx.settle(kicks)
    _ = ftruncate(log.rawValue, 0)
    ctx.memory.postTransmit(count: 4)
    for kick in kicks { kick.signal() }
    return ctx.sessionClosedAndDaemonAnswers()
}

// MARK: Chains and rings

/// A guest thread rewrites both rings for 50 ms while this one kicks them: the daemon must
/// stay alive and its control thread responsive; it may close the session or not.
func concurrentGuestWriter(_ ctx: Context) -> Bool {
    let kicks = [try! EventFD(), try! EventFD()]
    guard ctx.ready(kicks) else { return false }
    let scribbler = GuestRingScribbler(memory: ctx.memory)
    scribbler.start()
    let end = MonotonicClock.nanoseconds() + 50_000_000
    while MonotonicClock.nanoseconds() < end {
        for kick in kicks { kick.signal() }
        usleep(200)
    }
    scribbler.stop()
    return ctx.survivedWithSessionOutcome()
}

/// Both rings 32768 entries, every head a 32768-hop chain (or an indirect table as long as
/// the ring), all offered at once. The daemon must bound the work per burst: alive,
/// responsive, and (checked by the tests through /v1/stats) no long poll-loop iteration.
func hugeRings(_ ctx: Context, _ shape: HugeRingGuest.Shape) -> Bool {
    guard let guest = try? HugeRingGuest(shape) else { return false }
    let kicks = [try! EventFD(), try! EventFD()]
    guard ctx.setMemory(guest.memory),
          ctx.setUpRing(0, guest.placement(0), kick: kicks[0]),
          ctx.setUpRing(1, guest.placement(1), kick: kicks[1]),
          ctx.startDriver() else { return false }
    ctx.settle(kicks)
    usleep(5000)  // a few bursts' worth: the attack is in what one burst costs
    return ctx.survivedWithSessionOutcome()
}

// MARK: Address space

/// A region 2 MiB long at mmap offset 2^46 of a sparse memfd (one region, or two). A daemon
/// that maps from file offset 0 maps 64 TiB per region; two exhaust the address space.
/// Refusing is fine; accepting is fine if the daemon's address space (VmSize) grew by less
/// than 1 GiB while the session holds the table. The outcome says which happened.
func sparseHugeOffset(_ ctx: Context, regionCount: Int) -> Bool {
    let offset: UInt64 = 1 << 46
    let size: UInt64 = 2 << 20
    guard let file = try? MemFD.create(name: "hostile-sparse", size: Int(offset + size)) else {
        ctx.outcome = "no sparse memfd here"
        return true
    }
    let regions = (0..<regionCount).map { i in
        memoryRegion(gpa: UInt64(i) * size, size: size, uva: 0x7e00_0000_0000 + UInt64(i) * size, offset: offset)
    }
    let before = ctx.daemon.virtualKiB
    let ack = ctx.c.ack(.setMemTable, FakeFrontend.memoryTable(regions), fds: regions.map { _ in try! FileDescriptor.duplicate(file.rawValue) })
    guard ack == 0 else {
        ctx.outcome = "refused"
        return ctx.daemon.isAlive
    }
    guard before >= 0 else {
        ctx.outcome = "accepted (VmSize not checked: no --pid)"
        return true
    }
    let after = ctx.daemon.virtualKiB
    let grownKiB = after - before
    if after >= 0 && grownKiB < 1 << 20 {
        ctx.outcome = "accepted, VmSize grew < 1 GiB"
        return true
    }
    ctx.outcome = after < 0 ? "accepted, VmSize unreadable" : "accepted, VmSize grew \(grownKiB >> 20) GiB"
    return false
}

// MARK: Sessions

/// A running device (memory, rings, DRIVER_OK) sends many more requests than the daemon
/// reads in one batch (1,000; a batch is 64), closes, and at once (no pause) a new connection
/// asks for the features, as QEMU's reconnect= or a restarted DPDK application does, while a
/// connection on the other socket keeps the control thread busy. The old session's requests,
/// its hang-up and the new connection then reach the daemon in one epoll batch, the hang-up
/// unread behind many batches of requests; the reconnect must be served, not reset as a
/// second front-end.
func reconnectAtOnce(_ ctx: Context) -> Bool {
    let kicks = [try! EventFD(), try! EventFD()]
    guard ctx.ready(kicks) else { return false }
    let busy = ctx.otherSocket.flatMap { try? FakeFrontend.connect(path: $0) }
    defer { busy?.close() }
    busy?.offer(setOwnerRequests(5000), timeoutMilliseconds: 100)
    ctx.c.offer(setOwnerRequests(1000))
    ctx.c.close()
    guard let again = try? FakeFrontend.connect(path: ctx.socketPath) else {
        ctx.outcome = "connect refused"
        return false
    }
    defer { again.close() }
    again.offer(.getFeatures)
    switch again.receiveAnswer(timeoutMilliseconds: 1000) {
    case .reply:
        ctx.outcome = "served"
        return true
    case .closed:
        ctx.outcome = "reset"
        return false
    case .timedOut:
        ctx.outcome = "no answer"
        return false
    }
}

/// `count` SET_OWNER requests: cheap for the daemon, no reply, not ring-changing.
func setOwnerRequests(_ count: Int) -> [UInt8] {
    Array([[UInt8]](repeating: FakeFrontend.header(VhostUserRequest.setOwner.rawValue, size: 0), count: count).joined())
}

// MARK: Floods

/// One request to repeat, without need_reply (a flood does not wait).
enum FloodMessage {
    case setVringEnable([UInt8])
    case setFeatures([UInt8])
    case setStatus([UInt8])
    case sendRarp([UInt8])

    var encoded: [UInt8] {
        let (request, payload): (VhostUserRequest, [UInt8]) = switch self {
        case .setVringEnable(let p): (.setVringEnable, p)
        case .setFeatures(let p): (.setFeatures, p)
        case .setStatus(let p): (.setStatus, p)
        case .sendRarp(let p): (.sendRarp, p)
        }
        return FakeFrontend.header(request.rawValue, size: payload.count) + payload
    }
}

/// A ready session sends `count` messages in one go, then GET_FEATURES. Survived when the
/// daemon answered it (served all) or closed the session (over its budget), and another
/// socket's GET_FEATURES is still answered. No answer within 2 s is a failure.
func flood(_ ctx: Context, count: Int = 2000, _ message: (Int) -> FloodMessage) -> Bool {
    let kicks = [try! EventFD(), try! EventFD()]
    guard ctx.ready(kicks) else { return false }
    var burst: [UInt8] = []
    burst.reserveCapacity(count * 20)
    for i in 0..<count { burst += message(i).encoded }
    if ctx.c.offer(burst, timeoutMilliseconds: 2000), ctx.c.offer(.getFeatures) {
        ctx.outcome = ctx.c.replyOutcome(to: .getFeatures)
    } else {
        ctx.outcome = "closed"
    }
    return ctx.outcome != "no answer" && ctx.otherSocketAnswers()
}

/// 10,000 ADD_MEM_REG / REM_MEM_REG pairs of one region (each ADD with its fd), without
/// waiting, then GET_FEATURES: the same outcome rule as `flood` (the fds rule out one write).
func memoryHotplugToggles(_ ctx: Context, count: Int = 10_000) -> Bool {
    let kicks = [try! EventFD(), try! EventFD()]
    guard ctx.ready(kicks), let regions = try? FakeHotplugRegions(count: 1) else { return false }
    var sent = 0
    while sent < count, ctx.c.offer(.addMemReg, regions.payload(0), fds: [regions.fd]), ctx.c.offer(.remMemReg, regions.payload(0)) {
        sent += 1
    }
    ctx.outcome = ctx.c.offer(.getFeatures) ? ctx.c.replyOutcome(to: .getFeatures) : "closed"
    return ctx.outcome != "no answer" && ctx.otherSocketAnswers()
}

// MARK: Context helpers for these cases

extension Context {
    /// SET_LOG_BASE with LOG_SHMFD (negotiated by the handshake): accepted when the daemon
    /// sends its reply; a refusal closes the session.
    func setLogBase(_ log: FileDescriptor, size: UInt64) -> Bool {
        let logFD = try! FileDescriptor.duplicate(log.rawValue)
        guard c.offer(.setLogBase, FakeFrontend.logBase(size: size, offset: 0), fds: [logFD]) else { return false }
        if case .reply = c.receiveAnswer(timeoutMilliseconds: 1000) { return true }
        return false
    }

    /// The session ended (EOF within a second) and the daemon still serves a new front-end.
    func sessionClosedAndDaemonAnswers() -> Bool {
        let closed = c.waitForClose(timeoutMilliseconds: 1000)
        outcome = closed ? "closed" : "still open after 1 s"
        return closed && daemonAnswers()
    }

    /// After a ring attack: the daemon lives and its control thread answers another socket;
    /// the outcome records whether it kept this session or closed it.
    func survivedWithSessionOutcome() -> Bool {
        outcome = c.offer(.getFeatures) ? c.replyOutcome(to: .getFeatures) : "closed"
        return outcome != "no answer" && daemon.isAlive && otherSocketAnswers()
    }

    /// A connection (the other socket's, or this one's) gets GET_FEATURES answered.
    func daemonAnswers() -> Bool { answers(on: otherSocket ?? socketPath) }
}

extension FakeFrontend {
    /// Reads until the reply to `request` ("served"), the end of the session ("closed") or
    /// 2 s of silence ("no answer"); other replies are skipped.
    func replyOutcome(to request: VhostUserRequest) -> String {
        while true {
            switch receiveAnswer(timeoutMilliseconds: 2000) {
            case .reply(let reply) where reply.request == request.rawValue: return "served"
            case .reply: continue
            case .closed: return "closed"
            case .timedOut: return "no answer"
            }
        }
    }
}
