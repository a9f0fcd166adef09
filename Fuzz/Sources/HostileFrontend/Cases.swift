import Glibc
import TestSupport
import VhostSystem
import VhostUser
import Virtio

/// What the daemon must do with a case: refuse it (a failed REPLY_ACK, or close the
/// session), close the session (and live on), serve it, or merely survive it.
enum Expectation: CustomStringConvertible {
    case refused
    case closed
    case served
    case survives

    var description: String {
        switch self {
        case .refused: "refused"
        case .closed: "closed with the daemon alive"
        case .served: "served"
        case .survives: "survived cleanly"
        }
    }
}

struct HostileCase {
    var name: String
    var expectation: Expectation
    /// Runs on a fresh, already handshaken connection (features and protocol features with
    /// REPLY_ACK negotiated, SET_OWNER sent). Returns true when the daemon behaved: for
    /// `.refused` cases it refused (ack != 0 or the session was closed); for `.closed` cases
    /// the session ended and the daemon still answers; for `.served` cases it answered; for
    /// `.survives` cases the set-up worked and the control thread stayed responsive.
    var run: (Context) -> Bool
}

/// Shared by the cases: the guest memory a front-end would hand over, and the second
/// socket used to check that a stalled session does not block the control thread.
final class Context {
    let connection: FakeFrontend
    /// The virtio features the handshake set (SET_FEATURES).
    let features: UInt64
    let memory: FakeFrontendMemory
    let socketPath: String
    let otherSocket: String?
    var stallMilliseconds: Int32
    let daemon: DaemonProbe
    /// Which of several acceptable results happened ("refused", "closed", ...): counted per
    /// case and printed at the end.
    var outcome: String?

    init(connection: FakeFrontend, features: UInt64, socketPath: String, memory: FakeFrontendMemory, otherSocket: String?,
         stallMilliseconds: Int32, daemon: DaemonProbe) {
        self.connection = connection
        self.features = features
        self.socketPath = socketPath
        self.memory = memory
        self.otherSocket = otherSocket
        self.stallMilliseconds = stallMilliseconds
        self.daemon = daemon
    }

    var c: FakeFrontend { connection }

    /// A refusal: a non-zero REPLY_ACK, or the session ended.
    func refused(_ request: VhostUserRequest, _ payload: [UInt8], fds: [FileDescriptor] = []) -> Bool {
        let ack = c.ack(request, payload, fds: fds)
        return ack == nil || ack != 0
    }

    func refusedRaw(_ code: UInt32, _ payload: [UInt8], fds: [FileDescriptor] = [], flags: UInt32 = VhostUserHeader.version) -> Bool {
        guard c.offer(code, payload, fds: fds, needReply: true, flags: flags) else { return true }
        let reply = c.receiveAnswer(timeoutMilliseconds: 1000)
        return reply == .closed || reply.u64 != 0
    }

    func closedBy(_ bytes: [UInt8], fds: [FileDescriptor] = []) -> Bool {
        guard c.offer(bytes, fds: fds) else { return true }
        return c.waitForClose(timeoutMilliseconds: 1000)
    }

    /// SET_MEM_TABLE with one region of `guest` (the shared memory unless given); true when
    /// accepted.
    func setMemory(_ guest: FakeFrontendMemory? = nil) -> Bool {
        let guest = guest ?? memory
        return c.ack(.setMemTable, FakeFrontend.memoryTable([guest.descriptor]), fds: [guest.duplicateFD()]) == 0
    }

    /// Where one ring lives, as front-end virtual addresses (SET_VRING_ADDR), and its size.
    struct RingPlacement {
        var size: UInt32
        var descriptor: UInt64
        var avail: UInt64
        var used: UInt64
    }

    /// The usual placement in `guest`: size 256 at ring * 0x4000.
    func standardPlacement(_ ring: Int, in guest: FakeFrontendMemory? = nil) -> RingPlacement {
        let a = (guest ?? memory).ringAddresses(ring)
        return RingPlacement(size: 256, descriptor: a.descriptor, avail: a.avail, used: a.used)
    }

    /// NUM, BASE, ADDR, KICK (eventfd), CALL (NOFD) and ENABLE for one ring. With `logUsed`
    /// the address carries VHOST_VRING_F_LOG and the used ring's guest-physical address
    /// (region at guest-physical 0), so used-ring writes go to the dirty log.
    func setUpRing(_ ring: Int, _ placement: RingPlacement, kick: EventFD, logUsed: Bool = false) -> Bool {
        let i = UInt32(ring)
        let logAddress = logUsed ? placement.used - memory.descriptor.userspaceAddress : 0
        let address = FakeFrontend.vringAddress(index: i, flags: logUsed ? 1 : 0, descriptor: placement.descriptor,
                                                used: placement.used, avail: placement.avail, log: logAddress)
        return c.ack(.setVringNum, FakeFrontend.vringState(index: i, num: placement.size)) == 0
            && c.ack(.setVringBase, FakeFrontend.vringState(index: i, num: 0)) == 0
            && c.ack(.setVringAddr, address) == 0
            && c.ack(.setVringKick, FakeFrontend.u64(UInt64(i)), fds: [try! FileDescriptor.duplicate(kick.rawValue)]) == 0
            && c.ack(.setVringCall, FakeFrontend.u64(UInt64(i) | 1 << 8)) == 0
            && c.ack(.setVringEnable, FakeFrontend.vringState(index: i, num: 1)) == 0
    }

    /// Rings 0 and 1 (size 256) in `guest`, the shared memory unless given.
    func setUpRings(kicks: [EventFD], in guest: FakeFrontendMemory? = nil, logUsed: Bool = false) -> Bool {
        (0..<2).allSatisfy { setUpRing($0, standardPlacement($0, in: guest), kick: kicks[$0], logUsed: logUsed) }
    }

    /// ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK. The handshake negotiates the STATUS
    /// protocol feature, and with it the daemon (like DPDK) leaves the rings alone until
    /// DRIVER_OK: without this no ring case would reach the dataplane.
    static let driverReadyStatus: UInt64 = 0x0f

    func startDriver() -> Bool { c.ack(.setStatus, FakeFrontend.u64(Self.driverReadyStatus)) == 0 }

    /// Memory and both rings, driver started: the device is ready and its rings are polled.
    func ready(_ kicks: [EventFD], in guest: FakeFrontendMemory? = nil) -> Bool {
        setMemory(guest) && setUpRings(kicks: kicks, in: guest) && startDriver()
    }

    /// Lets the daemon's poll thread look at what was posted.
    func settle(_ kicks: [EventFD]) {
        for kick in kicks { kick.signal() }
        usleep(2000)
    }
}

/// A SET_MEM_TABLE region: guest-physical address, size, front-end virtual address, offset in the fd.
func memoryRegion(gpa: UInt64, size: UInt64, uva: UInt64, offset: UInt64 = 0) -> GuestMemoryRegionDescriptor {
    GuestMemoryRegionDescriptor(guestPhysicalAddress: gpa, size: size, userspaceAddress: uva, mmapOffset: offset)
}

func eventFDs(_ count: Int) -> [FileDescriptor] { (0..<count).map { _ in try! EventFD().descriptor } }

func devNull() -> FileDescriptor { FileDescriptor(adopting: open("/dev/null", O_RDWR | O_CLOEXEC)) }

/// Every case of UNTRUSTED-INPUT.md "vhost-user messages", plus ring cases (a session that
/// sets up rings and then posts garbage descriptors), plus the guest-containment cases of
/// issue 16 (ContainmentCases.swift).
func allCases() -> [HostileCase] {
    var cases: [HostileCase] = []
    func add(_ name: String, _ expectation: Expectation = .refused, _ run: @escaping (Context) -> Bool) {
        cases.append(HostileCase(name: name, expectation: expectation, run: run))
    }
    let getFeatures = VhostUserRequest.getFeatures.rawValue

    // --- Framing
    add("short-header") { $0.c.offer([1, 0, 0, 0, 1]); $0.c.close(); return true }
    add("size-above-max-payload") { $0.closedBy(FakeFrontend.header(getFeatures, size: 0x10000)) }
    add("size-huge") { $0.closedBy(FakeFrontend.header(getFeatures, size: 0xffff_ffff)) }
    add("size-not-fixed-size") { $0.refused(.setFeatures, [0, 0, 0, 0]) }
    add("size-too-big-for-request") { $0.refused(.setVringNum, [UInt8](repeating: 0, count: 16)) }
    add("version-0") { $0.closedBy(FakeFrontend.header(getFeatures, flags: 0, size: 0)) }
    add("version-2") { $0.closedBy(FakeFrontend.header(getFeatures, flags: 2, size: 0)) }
    add("reply-bit-on-request") { $0.closedBy(FakeFrontend.header(getFeatures, flags: 1 | 4, size: 0)) }
    add("request-code-0") { $0.refusedRaw(0, []) }
    add("request-code-unknown") { $0.refusedRaw(1000, []) }
    add("request-code-above-highest") { $0.refusedRaw(UInt32(VhostUserRequest.allCases.map(\.rawValue).max()! + 1), []) }
    add("request-code-max") { $0.refusedRaw(0xffff_ffff, FakeFrontend.u64(0)) }

    // --- File descriptors
    add("fds-on-request-taking-none") { $0.refused(.setOwner, [], fds: eventFDs(3)) }
    add("fds-on-get-request") { $0.refusedRaw(getFeatures, [], fds: eventFDs(2)) }
    add("more-than-8-fds") { ctx in
        ctx.refused(.setMemTable, FakeFrontend.memoryTable(Array(repeating: ctx.memory.descriptor, count: 8)), fds: eventFDs(12))
    }
    add("missing-fd-kick") { ctx in
        ctx.setMemory() && ctx.c.ack(.setVringNum, FakeFrontend.vringState(index: 0, num: 256)) == 0
            ? ctx.refused(.setVringKick, FakeFrontend.u64(0)) : true
    }
    add("missing-fd-mem-table") { ctx in ctx.refused(.setMemTable, FakeFrontend.memoryTable([ctx.memory.descriptor])) }
    add("nofd-with-fd") { $0.refused(.setVringCall, FakeFrontend.u64(1 << 8), fds: eventFDs(1)) }
    add("mem-table-fd-count-mismatch") { ctx in
        ctx.refused(.setMemTable, FakeFrontend.memoryTable([ctx.memory.descriptor]), fds: [ctx.memory.duplicateFD(), ctx.memory.duplicateFD()])
    }
    add("mem-table-declared-count-mismatch") { ctx in
        ctx.refused(.setMemTable, FakeFrontend.memoryTable([ctx.memory.descriptor], declaredCount: 3), fds: [ctx.memory.duplicateFD()])
    }

    // --- Vring index out of range (the device has 1 queue pair unless configured otherwise)
    let huge: UInt32 = 255
    add("index-num") { $0.refused(.setVringNum, FakeFrontend.vringState(index: huge, num: 256)) }
    add("index-addr") { $0.refused(.setVringAddr, FakeFrontend.vringAddress(index: huge, descriptor: 0, used: 0, avail: 0)) }
    add("index-base") { $0.refused(.setVringBase, FakeFrontend.vringState(index: 0xffff_ffff, num: 0)) }
    add("index-get-base") { $0.refused(.getVringBase, FakeFrontend.vringState(index: huge, num: 0)) }
    add("index-kick") { $0.refused(.setVringKick, FakeFrontend.u64(UInt64(huge) | 1 << 8)) }
    add("index-call") { $0.refused(.setVringCall, FakeFrontend.u64(UInt64(huge)), fds: eventFDs(1)) }
    add("index-err") { $0.refused(.setVringErr, FakeFrontend.u64(UInt64(huge)), fds: eventFDs(1)) }
    add("index-enable") { $0.refused(.setVringEnable, FakeFrontend.vringState(index: huge, num: 1)) }
    add("index-upper-bits-junk") { $0.refused(.setVringKick, FakeFrontend.u64(0xdead_0000_0000_0000 | 1 << 8)) }

    // --- SET_VRING_NUM
    add("num-0") { $0.refused(.setVringNum, FakeFrontend.vringState(index: 0, num: 0)) }
    add("num-not-power-of-two") { $0.refused(.setVringNum, FakeFrontend.vringState(index: 0, num: 255)) }
    add("num-above-32768") { $0.refused(.setVringNum, FakeFrontend.vringState(index: 0, num: 65536)) }
    add("num-repeated", .survives) { ctx in
        for size in [256, 512, 1024, 256] as [UInt32] { _ = ctx.c.ack(.setVringNum, FakeFrontend.vringState(index: 0, num: size)) }
        return true
    }

    // --- SET_MEM_TABLE
    add("mem-more-than-8-regions") { ctx in
        var regions: [GuestMemoryRegionDescriptor] = []
        for i in 0..<9 { regions.append(memoryRegion(gpa: UInt64(i) << 20, size: 4096, uva: UInt64(i) << 20)) }
        return ctx.refused(.setMemTable, FakeFrontend.memoryTable(regions), fds: (0..<8).map { _ in ctx.memory.duplicateFD() })
    }
    func region(_ ctx: Context, _ change: (inout GuestMemoryRegionDescriptor) -> Void) -> [UInt8] {
        var r = ctx.memory.descriptor
        change(&r)
        return FakeFrontend.memoryTable([r])
    }
    add("mem-size-0") { ctx in ctx.refused(.setMemTable, region(ctx) { $0.size = 0 }, fds: [ctx.memory.duplicateFD()]) }
    add("mem-gpa-wraps") { ctx in ctx.refused(.setMemTable, region(ctx) { $0.guestPhysicalAddress = ~UInt64(0) - 4095 }, fds: [ctx.memory.duplicateFD()]) }
    add("mem-uva-wraps") { ctx in ctx.refused(.setMemTable, region(ctx) { $0.userspaceAddress = ~UInt64(0) - 4095 }, fds: [ctx.memory.duplicateFD()]) }
    add("mem-offset-wraps") { ctx in ctx.refused(.setMemTable, region(ctx) { $0.mmapOffset = ~UInt64(0) - 4095 }, fds: [ctx.memory.duplicateFD()]) }
    add("mem-overlapping-regions") { ctx in
        let r = ctx.memory.descriptor
        let half = memoryRegion(gpa: r.guestPhysicalAddress + r.size / 2, size: r.size / 2, uva: r.userspaceAddress + r.size)
        return ctx.refused(.setMemTable, FakeFrontend.memoryTable([r, half]), fds: [ctx.memory.duplicateFD(), ctx.memory.duplicateFD()])
    }
    add("mem-unmappable-fd-eventfd") { ctx in ctx.refused(.setMemTable, FakeFrontend.memoryTable([ctx.memory.descriptor]), fds: eventFDs(1)) }
    add("mem-unmappable-fd-devnull") { ctx in ctx.refused(.setMemTable, FakeFrontend.memoryTable([ctx.memory.descriptor]), fds: [devNull()]) }
    add("mem-file-shorter-than-region") { ctx in
        ctx.refused(.setMemTable, region(ctx) { $0.size = ctx.memory.descriptor.size * 4 }, fds: [ctx.memory.duplicateFD()])
    }
    add("mem-offset-past-end") { ctx in
        ctx.refused(.setMemTable, region(ctx) { $0.mmapOffset = ctx.memory.descriptor.size - 4096 }, fds: [ctx.memory.duplicateFD()])
    }

    // --- SET_VRING_ADDR
    func addressCase(_ ctx: Context, descriptor: UInt64, avail: UInt64, used: UInt64) -> Bool {
        guard ctx.setMemory(), ctx.c.ack(.setVringNum, FakeFrontend.vringState(index: 0, num: 256)) == 0 else { return true }
        return ctx.refused(.setVringAddr, FakeFrontend.vringAddress(index: 0, descriptor: descriptor, used: used, avail: avail))
    }
    add("addr-outside-every-region") { ctx in
        addressCase(ctx, descriptor: 0x1000_0000_0000, avail: 0x1000_0000_1000, used: 0x1000_0000_2000)
    }
    add("addr-partly-mapped") { ctx in
        let start = ctx.memory.descriptor.userspaceAddress
        let end = start + ctx.memory.descriptor.size
        return addressCase(ctx, descriptor: end - 0x800, avail: start + 0x1000, used: start + 0x2000)
    }
    add("addr-across-two-regions") { ctx in
        // Two adjacent regions from two fds; the descriptor table straddles the boundary.
        let m = ctx.memory
        let half = m.descriptor.size / 2
        let u = m.descriptor.userspaceAddress
        let a = memoryRegion(gpa: 0, size: half, uva: u)
        let b = memoryRegion(gpa: half, size: half, uva: u + half, offset: half)
        guard ctx.c.ack(.setMemTable, FakeFrontend.memoryTable([a, b]), fds: [m.duplicateFD(), m.duplicateFD()]) == 0,
              ctx.c.ack(.setVringNum, FakeFrontend.vringState(index: 0, num: 256)) == 0 else { return true }
        return ctx.refused(.setVringAddr, FakeFrontend.vringAddress(index: 0, descriptor: u + half - 0x800, used: u + 0x2000, avail: u + 0x1000))
    }
    add("addr-misaligned") { ctx in
        let u = ctx.memory.descriptor.userspaceAddress
        return addressCase(ctx, descriptor: u + 8, avail: u + 0x1001, used: u + 0x2002)
    }
    add("addr-undefined-flags") { ctx in
        guard ctx.setMemory(), ctx.c.ack(.setVringNum, FakeFrontend.vringState(index: 0, num: 256)) == 0 else { return true }
        let a = ctx.memory.ringAddresses(0)
        return ctx.refused(.setVringAddr, FakeFrontend.vringAddress(index: 0, flags: 0xfffe, descriptor: a.descriptor, used: a.used, avail: a.avail))
    }

    // --- SET_LOG_BASE
    add("log-offset-overflows") { ctx in
        ctx.setMemory() ? ctx.refused(.setLogBase, FakeFrontend.logBase(size: 4096, offset: ~UInt64(0) - 100), fds: [ctx.memory.duplicateFD()]) : true
    }
    add("log-too-small") { ctx in
        ctx.setMemory() ? ctx.refused(.setLogBase, FakeFrontend.logBase(size: 1, offset: 0), fds: [ctx.memory.duplicateFD()]) : true
    }
    add("log-wrong-payload-size") { ctx in ctx.refused(.setLogBase, FakeFrontend.u64(4096), fds: [ctx.memory.duplicateFD()]) }
    add("log-file-too-short") { ctx in
        ctx.setMemory() ? ctx.refused(.setLogBase, FakeFrontend.logBase(size: 1 << 20, offset: 1 << 30), fds: [ctx.memory.duplicateFD()]) : true
    }

    // --- Features, status, MTU
    add("features-not-offered") { $0.refused(.setFeatures, FakeFrontend.u64(1 << 63 | 1 << 0)) }
    add("features-change-while-running") { ctx in
        let kicks = [try! EventFD(), try! EventFD()]
        guard ctx.ready(kicks) else { return true }
        return ctx.refused(.setFeatures, FakeFrontend.u64(1 << 32))  // VERSION_1 only: drops MRG_RXBUF etc.
    }
    add("status-above-0xff") { $0.refused(.setStatus, FakeFrontend.u64(0x100)) }
    add("mtu-too-small") { $0.refused(.netSetMtu, FakeFrontend.u64(67)) }
    add("mtu-too-large") { $0.refused(.netSetMtu, FakeFrontend.u64(65536)) }
    add("protocol-features-not-offered") { $0.refused(.setProtocolFeatures, FakeFrontend.u64(1 << 62)) }

    // --- Out of order
    add("addr-before-mem-table") { ctx in
        let a = ctx.memory.ringAddresses(0)
        _ = ctx.c.ack(.setVringNum, FakeFrontend.vringState(index: 0, num: 256))
        return ctx.refused(.setVringAddr, FakeFrontend.vringAddress(index: 0, descriptor: a.descriptor, used: a.used, avail: a.avail))
    }
    add("kick-before-addr") { ctx in
        guard ctx.setMemory() else { return true }
        _ = ctx.c.ack(.setVringNum, FakeFrontend.vringState(index: 0, num: 256))
        return ctx.refused(.setVringKick, FakeFrontend.u64(0), fds: eventFDs(1))
    }
    add("mem-table-replaced-in-flight", .survives) { ctx in
        let kicks = [try! EventFD(), try! EventFD()]
        guard ctx.ready(kicks) else { return false }
        ctx.memory.postTransmit(count: 32)
        for kick in kicks { kick.signal() }
        _ = ctx.setMemory()  // the same memory again, new mapping
        ctx.memory.postTransmit(count: 32)
        ctx.settle(kicks)
        return true
    }
    add("refused-ring-not-used", .survives) { ctx in
        // A ring whose address was refused must not be polled: kick it anyway.
        let kicks = [try! EventFD(), try! EventFD()]
        guard ctx.ready(kicks) else { return false }
        _ = ctx.c.ack(.setVringAddr,
                      FakeFrontend.vringAddress(index: 1, descriptor: 0x1000_0000_0000, used: 0x1000_0000_2000, avail: 0x1000_0000_1000))
        ctx.memory.postTransmit(count: 8)
        ctx.settle(kicks)
        return true
    }

    // --- Misbehaving streams
    add("disconnect-mid-message") { ctx in
        ctx.c.offer(FakeFrontend.header(VhostUserRequest.setVringNum.rawValue, size: 8) + [0, 0, 0])
        ctx.c.close()
        return true
    }
    add("header-without-payload-stalls", .survives) { ctx in
        ctx.c.offer(FakeFrontend.header(VhostUserRequest.setVringNum.rawValue, size: 8))
        return ctx.otherSocketAnswers()
    }
    add("half-header-stalls", .survives) { ctx in
        ctx.c.offer([2, 0, 0, 0, 1, 0])
        return ctx.otherSocketAnswers()
    }
    add("idle-connections", .survives) { ctx in
        // The session plus 32 more connections that are turned away or sit idle.
        var idle: [FakeFrontend] = []
        for _ in 0..<32 { if let extra = try? FakeFrontend.connect(path: ctx.socketPath) { idle.append(extra) } }
        let answered = ctx.otherSocketAnswers()
        for extra in idle { extra.close() }
        return answered
    }
    add("never-reads-replies") { ctx in
        // Thousands of GET_FEATURES without reading a reply: the daemon must drop the session.
        let request = FakeFrontend.header(getFeatures, size: 0)
        var burst: [UInt8] = []
        for _ in 0..<256 { burst += request }
        for _ in 0..<64 { if !ctx.c.offer(burst, timeoutMilliseconds: 50) { break } }
        var pfd = pollfd(fd: ctx.c.socket.rawValue, events: Int16(0x2000 /* POLLRDHUP */), revents: 0)
        _ = poll(&pfd, 1, 1000)
        return pfd.revents & Int16(0x2000 | POLLHUP) != 0
    }

    // --- Ring cases: a ready device, then garbage in the rings
    /// `post` gets the guest's receive ring (0), transmit ring (1) and its memory.
    func ringCase(_ name: String, _ post: @escaping (SplitGuestDriverRing, SplitGuestDriverRing, FakeFrontendMemory) -> Void) {
        add("ring-" + name, .survives) { ctx in
            let kicks = [try! EventFD(), try! EventFD()]
            guard ctx.ready(kicks) else { return false }
            post(ctx.memory.ring(0), ctx.memory.ring(1), ctx.memory)
            ctx.settle(kicks)
            return true
        }
    }
    ringCase("avail-idx-runaway") { rx, tx, _ in tx.setAvailIndex(0x8000); rx.setAvailIndex(0x7777) }
    ringCase("head-out-of-range") { rx, tx, m in tx.publish(heads: [300, 0xffff, 256]) }
    ringCase("next-out-of-range") { rx, tx, m in tx.writeDescriptor(0, address: 0x10000, length: 64, flags: 1, next: 4000); tx.publish(heads: [0]) }
    ringCase("loop") { rx, tx, m in
        tx.writeDescriptor(0, address: 0x10000, length: 64, flags: 1, next: 1)
        tx.writeDescriptor(1, address: 0x10100, length: 64, flags: 1, next: 0)
        tx.publish(heads: [0])
    }
    ringCase("length-0xffffffff") { rx, tx, m in tx.writeDescriptor(0, address: 0x10000, length: 0xffff_ffff, flags: 0, next: 0); tx.publish(heads: [0]) }
    ringCase("length-0") { rx, tx, m in tx.writeDescriptor(0, address: 0x10000, length: 0, flags: 0, next: 0); tx.publish(heads: [0]) }
    ringCase("address-unmapped") { rx, tx, m in tx.writeDescriptor(0, address: 0xdead_0000_0000, length: 64, flags: 0, next: 0); tx.publish(heads: [0]) }
    ringCase("write-only-in-tx") { rx, tx, m in tx.writeDescriptor(0, address: 0x10000, length: 100, flags: 2, next: 0); tx.publish(heads: [0]) }
    ringCase("read-only-in-rx") { rx, tx, m in
        rx.writeDescriptor(0, address: 0x20000, length: 2048, flags: 0, next: 0)
        rx.publish(heads: [0])
        m.postTransmit(count: 4)  // gives the switch something to deliver back
    }
    ringCase("shorter-than-header") { rx, tx, m in tx.writeDescriptor(0, address: 0x10000, length: 6, flags: 0, next: 0); tx.publish(heads: [0]) }
    ringCase("frame-under-14") { rx, tx, m in tx.writeDescriptor(0, address: 0x10000, length: 12 + 8, flags: 0, next: 0); tx.publish(heads: [0]) }
    ringCase("indirect-bad-length") { rx, tx, m in tx.writeDescriptor(0, address: 0x30000, length: 17, flags: 4, next: 0); tx.publish(heads: [0]) }
    ringCase("indirect-nested") { rx, tx, m in
        tx.writeDescriptor(0, address: 0x30000, length: 32, flags: 4, next: 0)
        tx.writeDescriptor(at: 0x30000, address: 0x10000, length: 12, flags: 1, next: 1)
        tx.writeDescriptor(at: 0x30010, address: 0x30000, length: 32, flags: 4, next: 0)
        tx.publish(heads: [0])
    }
    ringCase("indirect-with-next") { rx, tx, m in tx.writeDescriptor(0, address: 0x30000, length: 32, flags: 5, next: 1); tx.publish(heads: [0]) }
    ringCase("indirect-too-many-entries") { rx, tx, m in tx.writeDescriptor(0, address: 0x30000, length: 16 * 1024, flags: 4, next: 0); tx.publish(heads: [0]) }
    ringCase("same-head-twice") { rx, tx, m in
        tx.writeDescriptor(0, address: 0x10000, length: 12 + 60, flags: 0, next: 0)
        tx.publish(heads: [0, 0, 0, 0])
    }
    ringCase("bad-gso-header") { rx, tx, m in
        m.fixture.write([0x01, 0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0] + [UInt8](repeating: 0xab, count: 60), at: 0x10000)
        tx.writeDescriptor(0, address: 0x10000, length: 72, flags: 0, next: 0)
        tx.publish(heads: [0])
    }
    ringCase("frame-above-mtu") { rx, tx, m in tx.writeDescriptor(0, address: 0x10000, length: 0x10000, flags: 0, next: 0); tx.publish(heads: [0]) }
    return cases + containmentCases()
}

extension Context {
    /// While this session stalls, a connection to another hostile socket must still get its
    /// GET_FEATURES answered (the control thread is not blocked). True when it is answered.
    func otherSocketAnswers() -> Bool {
        usleep(UInt32(stallMilliseconds) * 1000)
        guard let path = otherSocket else { return true }  // nothing to compare with
        return answers(on: path)
    }

    /// A new connection to `path` gets GET_FEATURES answered within a second, allowing for
    /// the previous session there still being torn down (the daemon then turns it away).
    func answers(on path: String) -> Bool {
        var attempts = 0
        while attempts < 50 {
            attempts += 1
            guard let other = try? FakeFrontend.connect(path: path) else { usleep(1000); continue }
            defer { other.close() }
            other.offer(.getFeatures)
            switch other.receiveAnswer(timeoutMilliseconds: 1000) {
            case .reply: return true     // answered: not blocked
            case .timedOut: return false   // blocked
            case .closed: usleep(1000)     // its previous session is still being torn down
            }
        }
        return false
    }
}
