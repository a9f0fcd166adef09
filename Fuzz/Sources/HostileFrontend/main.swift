// hostile-frontend: replays every case of UNTRUSTED-INPUT.md "vhost-user messages", ring cases
// (a ready session that posts garbage descriptors) and the guest-containment cases of issue 16
// (guest memory or dirty log shrunk under traffic, a guest thread rewriting the rings while the
// switch walks them, 32768-entry rings, sparse huge mmap offsets, close-then-reconnect at once,
// floods of ring-changing messages) against a live vhost-switchd, each iteration on a fresh
// connection with one bad case, round-robin over the cases. `--list` prints them.
//
//   hostile-frontend --socket S1 [--socket S2] [--iterations 10000] [--pid DAEMON_PID]
//                    [--case SUBSTRING | --case ^PREFIX]... [--stall-ms 2]
//                    [--max-rss-growth-kib 8192] [--max-case-ms 10000] [--list]
//                    [--api API_SOCKET --neighbour PORT... [--neighbour-stall-ms 1000]]
//
// With two sockets, iterations alternate between them (each case runs on both, round after
// round) and the other one is used to check that a stalled session does not block the
// control thread. --case picks the cases whose name contains SUBSTRING or starts with PREFIX
// (`--case ^ring-`: the chain and ring attacks). With --pid the daemon's fd count and RSS are
// read from /proc before (after a warm-up round of every case) and after, its address-space
// size around the sparse-offset cases, and its liveness every iteration. A case (handshake
// included) that takes longer than --max-case-ms means the daemon stalled: the run stops
// there, as it does when the daemon dies. Cases whose acceptable result has several forms
// (refused or accepted, closed or served) print how often each happened ("outcome" lines).
// With --api and --neighbour, the named ports (forwarding through the same daemon) must keep
// receiving: between cases, at most every 100 ms, their switch.rx_packets are read from GET
// /v1/stats, and a neighbour without progress for --neighbour-stall-ms fails the run, naming
// the cases that ran meanwhile (NeighbourWatch).
// Exits 1 if the daemon died or stalled, a case was not refused / closed / served / survived
// as expected, fds grew or RSS grew more than allowed, 0 otherwise. The last line is
// machine-readable:
//   RESULT iterations=N failures=F fds_before=A fds_after=B rss_before_kib=C rss_after_kib=D seconds=T
import Glibc
import TestSupport
import VhostSystem
import VhostUser

setvbuf(stdout, nil, _IOLBF, 0)
signal(SIGPIPE, SIG_IGN)

var sockets: [String] = []
var iterations = 10_000
var pid: Int32?
var filters: [String] = []
var stallMilliseconds: Int32 = 2
var maxRSSGrowthKiB = 8192
var maxCaseMilliseconds: UInt64 = 10_000
var listOnly = false
var apiSocket: String?
var neighbours: [String] = []
var neighbourStallMilliseconds: UInt64 = 1000
var arguments = CommandLine.arguments.dropFirst().makeIterator()
while let argument = arguments.next() {
    switch argument {
    case "--socket": sockets.append(arguments.next() ?? "")
    case "--iterations": iterations = Int(arguments.next() ?? "") ?? iterations
    case "--pid": pid = Int32(arguments.next() ?? "")
    case "--case": filters.append(arguments.next() ?? "")
    case "--stall-ms": stallMilliseconds = Int32(arguments.next() ?? "") ?? stallMilliseconds
    case "--max-rss-growth-kib": maxRSSGrowthKiB = Int(arguments.next() ?? "") ?? maxRSSGrowthKiB
    case "--max-case-ms": maxCaseMilliseconds = UInt64(arguments.next() ?? "") ?? maxCaseMilliseconds
    case "--list": listOnly = true
    case "--api": apiSocket = arguments.next()
    case "--neighbour": neighbours.append(arguments.next() ?? "")
    case "--neighbour-stall-ms": neighbourStallMilliseconds = UInt64(arguments.next() ?? "") ?? neighbourStallMilliseconds
    default:
        print("usage: hostile-frontend --socket PATH [--socket PATH2] [--iterations N] [--pid PID] [--case NAME]... "
              + "[--stall-ms MS] [--max-rss-growth-kib KIB] [--max-case-ms MS] [--list]")
        exit(2)
    }
}

var cases = allCases()
/// "--case ring-" takes every case whose name contains "ring-" (flood-vring-enable too);
/// "--case ^ring-" only those whose name starts with it.
func selects(_ filter: String, _ name: String) -> Bool {
    filter.hasPrefix("^") ? name.hasPrefix(filter.dropFirst()) : name.contains(filter)
}
if !filters.isEmpty { cases = cases.filter { c in filters.contains { selects($0, c.name) } } }
if listOnly {
    for c in cases { print(c.name) }
    exit(0)
}
guard !sockets.isEmpty, !cases.isEmpty else {
    print("hostile-frontend: need --socket and at least one case")
    exit(2)
}

let daemon = DaemonProbe(pid: pid)
let neighbourWatch = apiSocket.flatMap { neighbours.isEmpty ? nil : NeighbourWatch(apiSocket: $0, ports: neighbours, stallMilliseconds: neighbourStallMilliseconds) }
let memory = try FakeFrontendMemory(name: "hostile-guest")

/// A fresh session: connect and negotiate (REPLY_ACK included); the virtio features it set.
/// Retries for up to `maxCaseMilliseconds` while the daemon still tears down the previous
/// session on this socket (it turns a second front-end away).
func handshake(_ path: String) -> (connection: FakeFrontend, features: UInt64)? {
    let deadline = MonotonicClock.nanoseconds() + maxCaseMilliseconds * 1_000_000
    while MonotonicClock.nanoseconds() < deadline {
        guard let connection = try? FakeFrontend.connect(path: path) else { usleep(1000); continue }
        connection.offer(.getFeatures)
        guard let offered = connection.receiveAnswer(timeoutMilliseconds: 2000).u64 else {
            connection.close()
            usleep(500)
            continue
        }
        connection.offer(.getProtocolFeatures)
        let protocolFeatures = connection.receiveAnswer(timeoutMilliseconds: 2000).u64 ?? 0
        connection.offer(.setProtocolFeatures, FakeFrontend.u64(protocolFeatures))
        let features = offered & ~(1 << 26) & ~(1 << 34)  // not LOG_ALL; split rings (the cases assume them)
        connection.offer(.setFeatures, FakeFrontend.u64(features))
        connection.offer(.setOwner)
        return (connection, features)
    }
    return nil
}

struct Tally {
    var runs = 0
    var failures = 0
    /// How often each acceptable result happened, for cases that report one.
    var outcomes: [String: Int] = [:]
}
var tallies: [String: Tally] = [:]
var failureLog: [String] = []
/// Set when a case took longer than --max-case-ms: the daemon stalled; the run stops.
var stalledCase: String?

func runOne(_ index: Int) -> Bool {
    let hostileCase = cases[index % cases.count]
    // Case k of round r goes to socket k + r: each case alternates between the sockets from
    // round to round (with an even number of cases, `index` alone would pin it to one).
    let socketIndex = index % cases.count + index / cases.count
    let path = sockets[socketIndex % sockets.count]
    let other = sockets.count > 1 ? sockets[(socketIndex + 1) % sockets.count] : nil
    let started = MonotonicClock.nanoseconds()
    guard let session = handshake(path) else {
        failureLog.append("iteration \(index) (\(hostileCase.name)): no session on \(path)")
        stalledCase = "\(hostileCase.name) (no session within \(maxCaseMilliseconds) ms)"
        return false
    }
    memory.zero(byteCount: 0x40000)  // rings and buffers back to zero: each iteration starts clean
    let context = Context(connection: session.connection, features: session.features, socketPath: path, memory: memory,
                          otherSocket: other, stallMilliseconds: stallMilliseconds, daemon: daemon)
    let ok = hostileCase.run(context)
    session.connection.close()
    neighbourWatch?.caseRan(hostileCase.name)
    let milliseconds = (MonotonicClock.nanoseconds() - started) / 1_000_000
    tallies[hostileCase.name, default: Tally()].runs += 1
    if let outcome = context.outcome { tallies[hostileCase.name, default: Tally()].outcomes[outcome, default: 0] += 1 }
    if milliseconds > maxCaseMilliseconds {
        stalledCase = "\(hostileCase.name) (took \(milliseconds) ms)"
    }
    if !ok {
        tallies[hostileCase.name, default: Tally()].failures += 1
        if failureLog.count < 50 {
            let detail = context.outcome.map { " (\($0))" } ?? ""
            failureLog.append("iteration \(index): \(hostileCase.name) was not \(hostileCase.expectation.description)\(detail)")
        }
    }
    return ok
}

let start = MonotonicClock.nanoseconds()
print("hostile-frontend: \(cases.count) cases, \(iterations) iterations against \(sockets.joined(separator: ", "))")
// Warm-up: every case once, so lazily grown state is in the "before" numbers.
for i in 0..<cases.count where stalledCase == nil && daemon.isAlive { _ = runOne(i) }
tallies = [:]
let warmFailures = failureLog
failureLog = []
usleep(200_000)
let fdsBefore = daemon.openFDs
let rssBefore = daemon.residentKiB
print("before: daemon fds \(fdsBefore), RSS \(rssBefore) KiB")
var died = !daemon.isAlive
if died { print("DAEMON DIED during the warm-up round") }
neighbourWatch?.start()
var completed = 0
for i in 0..<iterations where !died && stalledCase == nil {
    _ = runOne(i)
    completed += 1
    if !daemon.isAlive {
        died = true
        print("DAEMON DIED at iteration \(i) (case \(cases[i % cases.count].name))")
    }
    if (i + 1) % 1000 == 0 {
        print("  \(i + 1) iterations, daemon fds \(daemon.openFDs), RSS \(daemon.residentKiB) KiB, \((MonotonicClock.nanoseconds() - start) / 1_000_000) ms")
    }
}
if let stalledCase { print("DAEMON STALLED: \(stalledCase)") }
// Let the daemon finish tearing down the last sessions.
usleep(300_000)
let fdsAfter = daemon.openFDs
let rssAfter = daemon.residentKiB
let seconds = Double(MonotonicClock.nanoseconds() - start) / 1e9
print("after:  daemon fds \(fdsAfter), RSS \(rssAfter) KiB")
for name in tallies.keys.sorted() {
    let t = tallies[name]!
    if !t.outcomes.isEmpty {
        print("outcome \(name): " + t.outcomes.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
    }
    if t.failures > 0 { print("  case \(name): \(t.failures) of \(t.runs) not as expected") }
}
for line in warmFailures + failureLog { print("  " + line) }
if let neighbourWatch {
    print("neighbours \(neighbourWatch.ports.joined(separator: ", ")): \(neighbourWatch.checks) checks, "
          + "longest without a received frame \(neighbourWatch.longestWithoutProgressMilliseconds) ms")
    for line in neighbourWatch.stalls { print("NEIGHBOUR STALL: " + line) }
}
let failures = tallies.values.reduce(0) { $0 + $1.failures } + (died ? 1 : 0)
var problems: [String] = []
if died { problems.append("the daemon died") }
if let stalledCase { problems.append("the daemon stalled in \(stalledCase)") }
if failures > 0 { problems.append("\(failures) case runs not as expected") }
if let stalls = neighbourWatch?.stalls, !stalls.isEmpty { problems.append("\(stalls.count) neighbour stall(s)") }
if pid != nil && fdsAfter > fdsBefore { problems.append("daemon fds grew \(fdsBefore) -> \(fdsAfter)") }
if pid != nil && rssAfter - rssBefore > maxRSSGrowthKiB { problems.append("daemon RSS grew \(rssBefore) -> \(rssAfter) KiB") }
print("RESULT iterations=\(completed) failures=\(failures) fds_before=\(fdsBefore) fds_after=\(fdsAfter) "
      + "rss_before_kib=\(rssBefore) rss_after_kib=\(rssAfter) seconds=\(Double(Int(seconds * 10)) / 10)")
if problems.isEmpty {
    print("hostile-frontend: OK")
    exit(0)
}
print("hostile-frontend: FAILED: " + problems.joined(separator: "; "))
exit(1)
