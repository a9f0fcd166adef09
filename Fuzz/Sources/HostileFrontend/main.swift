// hostile-frontend: replays every case of UNTRUSTED-INPUT.md "vhost-user messages" (and ring
// cases: a ready session that posts garbage descriptors) against a live vhost-switchd, each
// iteration on a fresh connection with one bad case, round-robin over the cases.
//
//   hostile-frontend --socket S1 [--socket S2] [--iterations 10000] [--pid DAEMON_PID]
//                    [--case SUBSTRING]... [--stall-ms 2] [--max-rss-growth-kib 8192] [--list]
//
// With two sockets, iterations alternate between them and the other one is used to check
// that a stalled session does not block the control thread. With --pid the daemon's fd count
// and RSS are read from /proc before (after a warm-up round of every case) and after, and
// its liveness is checked every iteration. Prints per-case results and the numbers; exits 1
// if the daemon died, a case was not refused / not survived, fds grew or RSS grew more than
// allowed, 0 otherwise. The last line is machine-readable:
//   RESULT iterations=N failures=F fds_before=A fds_after=B rss_before_kib=C rss_after_kib=D seconds=T
import Glibc
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
var listOnly = false
var arguments = CommandLine.arguments.dropFirst().makeIterator()
while let argument = arguments.next() {
    switch argument {
    case "--socket": sockets.append(arguments.next() ?? "")
    case "--iterations": iterations = Int(arguments.next() ?? "") ?? iterations
    case "--pid": pid = Int32(arguments.next() ?? "")
    case "--case": filters.append(arguments.next() ?? "")
    case "--stall-ms": stallMilliseconds = Int32(arguments.next() ?? "") ?? stallMilliseconds
    case "--max-rss-growth-kib": maxRSSGrowthKiB = Int(arguments.next() ?? "") ?? maxRSSGrowthKiB
    case "--list": listOnly = true
    default:
        print("usage: hostile-frontend --socket PATH [--socket PATH2] [--iterations N] [--pid PID] [--case NAME]... [--stall-ms MS] [--max-rss-growth-kib KIB] [--list]")
        exit(2)
    }
}

var cases = allCases()
if !filters.isEmpty { cases = cases.filter { c in filters.contains { c.name.contains($0) } } }
if listOnly {
    for c in cases { print(c.name) }
    exit(0)
}
guard !sockets.isEmpty, !cases.isEmpty else {
    print("hostile-frontend: need --socket and at least one case")
    exit(2)
}

func daemonAlive() -> Bool { pid.map { kill($0, 0) == 0 && !isZombie($0) } ?? true }

func isZombie(_ pid: Int32) -> Bool {
    guard let bytes = try? FileSystem.readFile("/proc/\(pid)/stat", maxBytes: 4096) else { return true }
    let text = String(decoding: bytes, as: UTF8.self)
    guard let close = text.lastIndex(of: ")") else { return true }
    return text[text.index(close, offsetBy: 2)...].hasPrefix("Z")
}

func daemonFDs() -> Int {
    guard let pid, let dir = opendir("/proc/\(pid)/fd") else { return -1 }
    defer { closedir(dir) }
    var count = 0
    while readdir(dir) != nil { count += 1 }
    return count - 2
}

func daemonRSSKiB() -> Int {
    guard let pid, let bytes = try? FileSystem.readFile("/proc/\(pid)/status", maxBytes: 65536) else { return -1 }
    for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n") where line.hasPrefix("VmRSS:") {
        return Int(line.split(separator: " ", omittingEmptySubsequences: true)[1]) ?? -1
    }
    return -1
}

let memory = try GuestMemoryFile()

/// A fresh session: connect and negotiate (REPLY_ACK included). Retries while the daemon
/// still tears down the previous session on this socket (it turns a second front-end away).
func handshake(_ path: String) -> Connection? {
    for _ in 0..<500 {
        guard let connection = try? Connection(path: path) else { usleep(1000); continue }
        connection.send(.getFeatures)
        guard let offered = connection.readReply(timeoutMilliseconds: 2000).u64 else {
            connection.close()
            usleep(500)
            continue
        }
        connection.send(.getProtocolFeatures)
        let protocolFeatures = connection.readReply(timeoutMilliseconds: 2000).u64 ?? 0
        connection.send(.setProtocolFeatures, Payload.u64(protocolFeatures))
        connection.send(.setFeatures, Payload.u64(offered & ~(1 << 26) & ~(1 << 34)))  // not LOG_ALL; split rings (the cases assume them)
        connection.send(.setOwner)
        return connection
    }
    return nil
}

struct Tally { var runs = 0; var failures = 0 }
var tallies: [String: Tally] = [:]
var failureLog: [String] = []

func runOne(_ index: Int) -> Bool {
    let hostileCase = cases[index % cases.count]
    let path = sockets[index % sockets.count]
    let other = sockets.count > 1 ? sockets[(index + 1) % sockets.count] : nil
    guard let connection = handshake(path) else {
        failureLog.append("iteration \(index) (\(hostileCase.name)): no session on \(path)")
        return false
    }
    memory.reset()
    let context = Context(connection: connection, socketPath: path, memory: memory, otherSocket: other, stallMilliseconds: stallMilliseconds)
    let ok = hostileCase.run(context)
    connection.close()
    tallies[hostileCase.name, default: Tally()].runs += 1
    if !ok {
        tallies[hostileCase.name, default: Tally()].failures += 1
        if failureLog.count < 50 {
            failureLog.append("iteration \(index): \(hostileCase.name) was not \(hostileCase.expectation == .refused ? "refused" : "survived cleanly")")
        }
    }
    return ok
}

let start = MonotonicClock.nanoseconds()
print("hostile-frontend: \(cases.count) cases, \(iterations) iterations against \(sockets.joined(separator: ", "))")
// Warm-up: every case once, so lazily grown state is in the "before" numbers.
for i in 0..<cases.count { _ = runOne(i) }
tallies = [:]
let warmFailures = failureLog
failureLog = []
usleep(200_000)
let fdsBefore = daemonFDs()
let rssBefore = daemonRSSKiB()
print("before: daemon fds \(fdsBefore), RSS \(rssBefore) KiB")
var died = false
var completed = 0
for i in 0..<iterations {
    _ = runOne(i)
    completed += 1
    if !daemonAlive() {
        died = true
        print("DAEMON DIED at iteration \(i) (case \(cases[i % cases.count].name))")
        break
    }
    if (i + 1) % 1000 == 0 {
        print("  \(i + 1) iterations, daemon fds \(daemonFDs()), RSS \(daemonRSSKiB()) KiB, \((MonotonicClock.nanoseconds() - start) / 1_000_000) ms")
    }
}
// Let the daemon finish tearing down the last sessions.
usleep(300_000)
let fdsAfter = daemonFDs()
let rssAfter = daemonRSSKiB()
let seconds = Double(MonotonicClock.nanoseconds() - start) / 1e9
print("after:  daemon fds \(fdsAfter), RSS \(rssAfter) KiB")
for name in tallies.keys.sorted() {
    let t = tallies[name]!
    if t.failures > 0 { print("  case \(name): \(t.failures) of \(t.runs) not as expected") }
}
for line in warmFailures + failureLog { print("  " + line) }
let failures = tallies.values.reduce(0) { $0 + $1.failures } + (died ? 1 : 0)
var problems: [String] = []
if died { problems.append("the daemon died") }
if failures > 0 { problems.append("\(failures) case runs not as expected") }
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
