// Drives DPDK's dpdk-testpmd (22.11) as a real vhost-user peer in integration tests:
// `net_virtio_user` makes it a front-end without a VM, `net_vhost` makes it DPDK's own
// back-end. See docs/TESTPMD.md for the verified command lines and the gotchas this file
// works around (stdout buffering, client-mode start-up blocking, hugepage file cleanup).
import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

// MARK: - Errors and results

public enum TestpmdError: Error, CustomStringConvertible {
    case launchFailed(String)
    case timedOut(waitingFor: String, recentOutput: String)
    case exited(status: Int32, recentOutput: String)
    case unexpectedOutput(String)

    public var description: String {
        switch self {
        case .launchFailed(let why):
            return "dpdk-testpmd could not be launched: \(why)"
        case .timedOut(let what, let output):
            return "dpdk-testpmd: timed out waiting for \(what); recent output:\n\(output)"
        case .exited(let status, let output):
            return "dpdk-testpmd exited (status \(status)); recent output:\n\(output)"
        case .unexpectedOutput(let output):
            return "dpdk-testpmd: unexpected output:\n\(output)"
        }
    }
}

/// One port's counters from `show port stats all` (the NIC statistics block).
public struct TestpmdPortStats: Equatable, Sendable, CustomStringConvertible {
    public var port: Int
    public var rxPackets: UInt64
    public var rxBytes: UInt64
    public var rxMissed: UInt64
    public var rxErrors: UInt64
    public var rxNoMbuf: UInt64
    public var txPackets: UInt64
    public var txBytes: UInt64
    public var txErrors: UInt64

    public init(port: Int, rxPackets: UInt64 = 0, rxBytes: UInt64 = 0, rxMissed: UInt64 = 0,
                rxErrors: UInt64 = 0, rxNoMbuf: UInt64 = 0, txPackets: UInt64 = 0,
                txBytes: UInt64 = 0, txErrors: UInt64 = 0) {
        self.port = port
        self.rxPackets = rxPackets
        self.rxBytes = rxBytes
        self.rxMissed = rxMissed
        self.rxErrors = rxErrors
        self.rxNoMbuf = rxNoMbuf
        self.txPackets = txPackets
        self.txBytes = txBytes
        self.txErrors = txErrors
    }

    public var description: String {
        "port \(port): rx \(rxPackets) pkts/\(rxBytes) B (missed \(rxMissed), errors \(rxErrors), nombuf \(rxNoMbuf)), "
            + "tx \(txPackets) pkts/\(txBytes) B (errors \(txErrors))"
    }
}

/// One port's counters from the summary that `stop` prints ("Forward statistics for port N").
/// These are the forwarding engine's counts since the last `start`; they carry no byte counts.
public struct TestpmdForwardStats: Equatable, Sendable {
    public var port: Int
    public var rxPackets: UInt64
    public var rxDropped: UInt64
    public var txPackets: UInt64
    public var txDropped: UInt64

    public init(port: Int, rxPackets: UInt64, rxDropped: UInt64, txPackets: UInt64, txDropped: UInt64) {
        self.port = port
        self.rxPackets = rxPackets
        self.rxDropped = rxDropped
        self.txPackets = txPackets
        self.txDropped = txDropped
    }
}

/// Parsers for testpmd's human-readable output; public so tests can check them on canned text.
public enum TestpmdOutputParser {
    /// Parses every "NIC statistics for port N" block (from `show port stats all|N`).
    public static func portStats(_ text: String) -> [TestpmdPortStats] {
        blocks(of: text, marker: "NIC statistics for port").map { port, fields in
            TestpmdPortStats(port: port,
                      rxPackets: fields["RX-packets:"] ?? 0, rxBytes: fields["RX-bytes:"] ?? 0,
                      rxMissed: fields["RX-missed:"] ?? 0, rxErrors: fields["RX-errors:"] ?? 0,
                      rxNoMbuf: fields["RX-nombuf:"] ?? 0, txPackets: fields["TX-packets:"] ?? 0,
                      txBytes: fields["TX-bytes:"] ?? 0, txErrors: fields["TX-errors:"] ?? 0)
        }
    }

    /// Parses every "Forward statistics for port N" block (printed by `stop` and on exit).
    public static func forwardStats(_ text: String) -> [TestpmdForwardStats] {
        blocks(of: text, marker: "Forward statistics for port").map { port, fields in
            TestpmdForwardStats(port: port,
                         rxPackets: fields["RX-packets:"] ?? 0, rxDropped: fields["RX-dropped:"] ?? 0,
                         txPackets: fields["TX-packets:"] ?? 0, txDropped: fields["TX-dropped:"] ?? 0)
        }
    }

    /// Parses `show port summary all`: port number to link status ("up" is true).
    public static func linkStatus(_ text: String) -> [Int: Bool] {
        var result: [Int: Bool] = [:]
        var inTable = false
        for line in text.split(separator: "\n") {
            let tokens = line.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" })
            if tokens.first == "Port", tokens.contains("Status") {
                inTable = true
                continue
            }
            // Rows: Port MAC Name Driver Status Link (the link speed may be "10 Gbps").
            guard inTable, tokens.count >= 5, let port = Int(tokens[0]) else { continue }
            if let status = tokens.dropFirst(4).first(where: { $0 == "up" || $0 == "down" }) {
                result[port] = status == "up"
            }
        }
        return result
    }

    /// Splits `text` at each `marker <port>` and collects "NAME: <number>" pairs per block. A
    /// block ends at the next marker or at an "Accumulated" total; blocks repeated for the same
    /// port (periodic statistics) keep the last one.
    private static func blocks(of text: String, marker: String) -> [(Int, [String: UInt64])] {
        var byPort: [Int: [String: UInt64]] = [:]
        var order: [Int] = []
        let parts = text.components(separatedBy: marker)
        for part in parts.dropFirst() {
            var body = Substring(part)
            if let end = body.range(of: "Accumulated") { body = body[..<end.lowerBound] }
            let tokens = body.split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "\t" || $0 == "\r" })
            guard let first = tokens.first, let port = Int(first) else { continue }
            var fields: [String: UInt64] = [:]
            var index = tokens.startIndex
            while index < tokens.endIndex {
                let token = tokens[index]
                let next = tokens.index(after: index)
                if token.hasSuffix(":"), next < tokens.endIndex, let value = UInt64(tokens[next]) {
                    fields[String(token)] = value
                }
                index = next
            }
            if byPort[port] == nil { order.append(port) }
            byPort[port] = fields
        }
        return order.map { ($0, byPort[$0]!) }
    }
}

// MARK: - Configuration

/// How a testpmd process gets the memory it shares with its vhost-user peer.
public enum TestpmdMemory: Sendable, Equatable {
    /// 2 MiB hugepages through memfd (`--in-memory`): no files under /dev/hugepages and no
    /// runtime directory lock, so nothing is left behind even after SIGKILL. The default.
    case hugepagesInMemory
    /// Hugepage files under /dev/hugepages named `<file-prefix>map_*` (DPDK's classic mode).
    /// `Testpmd` deletes them after the process exits.
    case hugepageFiles
    /// No hugepages at all (`--no-huge -m <megabytes>`): DPDK 22.11 backs memory with a
    /// shareable memfd, so vhost-user still works. Runs even without root.
    case noHuge(megabytes: Int)

    var ealArguments: [String] {
        switch self {
        case .hugepagesInMemory: return ["--in-memory"]
        case .hugepageFiles: return []
        case .noHuge(let megabytes): return ["--no-huge", "-m", String(megabytes)]
        }
    }
}

public struct TestpmdConfiguration: Sendable {
    /// A label used in log lines and error messages ("front-end", "back-end").
    public var name: String
    public var executable: String
    /// The CPU both of testpmd's lcores run on (main lcore 0 and forwarding lcore 1, via
    /// `--lcores 0@cpu,1@cpu`). testpmd refuses to start with a single lcore ("No cores
    /// defined for forwarding"); the main lcore sleeps in the command line, so sharing one
    /// CPU costs nothing, and two testpmd processes on different CPUs never share a poller.
    public var cpu: Int
    public var filePrefix: String
    public var memory: TestpmdMemory
    public var singleFileSegments: Bool
    public var vdevs: [String]
    /// Extra EAL arguments (before `--`).
    public var extraEALArguments: [String]
    /// Application arguments after `--`; `-i` is always added.
    public var appArguments: [String]
    /// Run under nice(1) at this level (`LowPriorityCommand`): a load generator that must not
    /// delay what a test times on the same CPU. nil: the test's own priority.
    public var niceness: Int32?

    public init(name: String, executable: String = IntegrationEnvironment.testpmdPath, cpu: Int,
                filePrefix: String = Testpmd.uniqueFilePrefix(), memory: TestpmdMemory = .hugepagesInMemory,
                singleFileSegments: Bool = true, vdevs: [String], extraEALArguments: [String] = [],
                appArguments: [String], niceness: Int32? = nil) {
        self.name = name
        self.executable = executable
        self.cpu = cpu
        self.filePrefix = filePrefix
        self.memory = memory
        self.singleFileSegments = singleFileSegments
        self.vdevs = vdevs
        self.extraEALArguments = extraEALArguments
        self.appArguments = appArguments
        self.niceness = niceness
    }

    /// The full argument vector after the executable.
    public var arguments: [String] {
        var eal = ["--lcores", "0@\(cpu),1@\(cpu)", "--no-pci", "--file-prefix", filePrefix]
        eal += memory.ealArguments
        if singleFileSegments { eal.append("--single-file-segments") }
        for vdev in vdevs { eal += ["--vdev", vdev] }
        eal += extraEALArguments
        return eal + ["--", "-i"] + appArguments
    }

    /// The command line as a shell would show it (for logs and docs).
    public var commandLine: String {
        ((niceness.map { ["nice", "-n", "\($0)"] } ?? []) + [executable] + arguments).map { argument in
            argument.contains(where: { " \t'\"$`\\*?;&|<>()[]{}~#!".contains($0) }) ? "'\(argument)'" : argument
        }.joined(separator: " ")
    }
}

// MARK: - Testpmd

/// One interactive dpdk-testpmd process, driven over stdin.
///
/// testpmd's stdout is a pipe here, so glibc would block-buffer its printf output while the
/// `testpmd> ` prompt is written unbuffered: the prompt would overtake the output of the
/// command it follows. The process therefore runs under `stdbuf -oL`.
public final class Testpmd: @unchecked Sendable {
    public static let prompt = "testpmd> "

    public let configuration: TestpmdConfiguration
    private let process = Process()
    private let stdinPipe = Pipe()
    private let stdoutPipe = Pipe()
    private let output = OutputBuffer()
    private let stateLock = NSLock()
    private var finished = false

    private static let counter = Counter()

    /// A file prefix unique to this test process: DPDK keys its runtime directory
    /// (/var/run/dpdk/<prefix>) and hugepage files (/dev/hugepages/<prefix>map_N) on it.
    public static func uniqueFilePrefix(_ role: String = "tp") -> String {
        "vst\(getpid())\(role)\(counter.next())"
    }

    /// Launches testpmd. With `waitForPrompt` (the default) this returns once the first
    /// prompt appears (0.3-1 s on the reference machine). A virtio-user front-end in server
    /// mode (`server=1`) blocks in device probe until its back-end connects, so launch it
    /// with `waitForPrompt: false`, start the back-end, then call `waitForPrompt()`.
    public init(_ configuration: TestpmdConfiguration, waitForPrompt: Bool = true,
                startupTimeout: TimeInterval = 30) throws {
        self.configuration = configuration
        _ = Testpmd.ignoreSIGPIPE
        let stdbuf = "/usr/bin/stdbuf"
        var command = [configuration.executable] + configuration.arguments
        if FileManager.default.isExecutableFile(atPath: stdbuf) { command = [stdbuf, "-oL"] + command }
        if let niceness = configuration.niceness { command = LowPriorityCommand.wrap(command, niceness: niceness) }
        process.executableURL = URL(fileURLWithPath: command[0])
        process.arguments = Array(command.dropFirst())
        process.standardInput = stdinPipe
        process.standardOutput = stdoutPipe
        process.standardError = stdoutPipe
        let buffer = output
        let reader = stdoutPipe.fileHandleForReading
        do {
            try process.run()
        } catch {
            throw TestpmdError.launchFailed("\(configuration.commandLine): \(error)")
        }
        note("started pid \(process.processIdentifier): \(configuration.commandLine)")
        let thread = Thread {
            while true {
                let data = reader.availableData
                if data.isEmpty { break }
                buffer.append(data)
            }
            buffer.markClosed()
        }
        thread.name = "testpmd-\(configuration.name)-reader"
        thread.start()
        if waitForPrompt {
            do {
                try self.waitForPrompt(timeout: startupTimeout)
            } catch {
                terminate()
                throw error
            }
        }
    }

    deinit {
        terminate()
    }

    public var processIdentifier: Int32 { process.processIdentifier }
    public var isRunning: Bool { process.isRunning }

    /// Everything testpmd printed so far (stdout and stderr).
    public var fullOutput: String { output.text(from: 0) }

    /// Waits for the first prompt (start-up finished, all vdevs probed), then checks that
    /// every vdev became a port. (virtio-user pointed at a socket nobody listens on makes
    /// testpmd exit with status 1, "vhost_user_setup(): connect error"; this check catches
    /// vdevs that fail more quietly, since testpmd runs on with whatever ports probed.)
    public func waitForPrompt(timeout: TimeInterval = 30) throws {
        _ = try waitFor(Testpmd.prompt, after: 0, timeout: timeout)
        let summary = try command("show port summary all")
        let ports = TestpmdOutputParser.linkStatus(summary).count
        if ports != configuration.vdevs.count {
            throw TestpmdError.unexpectedOutput(
                "expected \(configuration.vdevs.count) ports, testpmd has \(ports):\n\(summary)\nrecent output:\n\(output.tail())")
        }
    }

    /// Sends one command line and returns what it printed, up to the next prompt.
    @discardableResult
    public func command(_ line: String, timeout: TimeInterval = 20) throws -> String {
        let start = output.count
        try send(line)
        let end: Int
        do {
            end = try waitFor(Testpmd.prompt, after: start, timeout: min(5, timeout))
        } catch TestpmdError.timedOut {
            // An asynchronous log line (a link event, a reconnect) can land inside the prompt
            // ("testpmd>virtio_user_dev_server_reconnect..."): an empty line prints a fresh one.
            try send("")
            end = try waitFor(Testpmd.prompt, after: start, timeout: timeout)
        }
        return output.text(from: start, to: end)
    }

    /// Writes a line to testpmd's stdin without waiting for anything.
    public func send(_ line: String) throws {
        do {
            try stdinPipe.fileHandleForWriting.write(contentsOf: Data((line + "\n").utf8))
        } catch {
            throw TestpmdError.exited(status: exitStatusIfDone ?? -1, recentOutput: output.tail())
        }
    }

    /// Waits until `text` appears in the output after byte offset `after`; returns the offset
    /// just past it.
    @discardableResult
    public func waitFor(_ text: String, after: Int? = nil, timeout: TimeInterval = 20) throws -> Int {
        let from = after ?? output.count
        let deadline = Date().addingTimeInterval(timeout)
        let needle = Data(text.utf8)
        while true {
            if let end = output.find(needle, from: from) { return end }
            if output.isClosed || !process.isRunning {
                // Output may still be in flight; look once more before giving up.
                Thread.sleep(forTimeInterval: 0.1)
                if let end = output.find(needle, from: from) { return end }
                throw TestpmdError.exited(status: exitStatusIfDone ?? -1, recentOutput: output.tail())
            }
            if Date() >= deadline {
                throw TestpmdError.timedOut(waitingFor: "\"\(text)\"", recentOutput: output.tail())
            }
            Thread.sleep(forTimeInterval: 0.01)
        }
    }

    // MARK: Forwarding

    /// `start`, or `start tx_first N`: first send N bursts of `--burst` packets (default 32)
    /// on every forwarding port, then run the configured forwarding mode.
    public func start(txFirst bursts: Int? = nil) throws {
        if let bursts {
            try command(bursts == 1 ? "start tx_first" : "start tx_first \(bursts)")
        } else {
            try command("start")
        }
    }

    /// `stop`: stops forwarding and returns the per-port summary it prints.
    @discardableResult
    public func stop() throws -> [TestpmdForwardStats] {
        TestpmdOutputParser.forwardStats(try command("stop"))
    }

    /// `show port stats all`, parsed; sorted by port.
    public func portStats() throws -> [TestpmdPortStats] {
        let text = try command("show port stats all")
        let stats = TestpmdOutputParser.portStats(text)
        if stats.isEmpty { throw TestpmdError.unexpectedOutput(text) }
        return stats.sorted { $0.port < $1.port }
    }

    /// `clear port stats all`.
    public func clearStats() throws {
        try command("clear port stats all")
    }

    /// Polls `show port stats all` until `condition` holds; returns the last stats. Packets in
    /// flight make single reads racy: wait for the counts you expect, then assert.
    @discardableResult
    public func waitForPortStats(timeout: TimeInterval = 10, pollInterval: TimeInterval = 0.05,
                                 until condition: ([TestpmdPortStats]) -> Bool) throws -> [TestpmdPortStats] {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            let stats = try portStats()
            if condition(stats) { return stats }
            if Date() >= deadline {
                throw TestpmdError.timedOut(waitingFor: "port stats condition; last: \(stats)",
                                            recentOutput: output.tail(2000))
            }
            Thread.sleep(forTimeInterval: pollInterval)
        }
    }

    /// Both ports send `bursts` bursts of `--burst` frames (`burst`, for the count) to each
    /// other; returns once each port received and sent at least that many, forwarding stopped.
    /// At-least counts: for "traffic flows", not for exact accounting.
    public func exchangeBothWays(bursts: Int = 2, burst: Int = 16, timeout: TimeInterval = 10) throws {
        let packets = UInt64(bursts * burst)
        try clearStats()
        try start(txFirst: bursts)
        try waitForPortStats(timeout: timeout) { stats in
            stats.count == 2 && stats.allSatisfy { $0.rxPackets >= packets && $0.txPackets >= packets }
        }
        try stop()
    }

    /// `show port summary all`, parsed: port number to link up.
    public func linkStatus() throws -> [Int: Bool] {
        TestpmdOutputParser.linkStatus(try command("show port summary all"))
    }

    /// Waits until the given ports (all when nil) report link up. For `net_vhost` that means
    /// the front-end has set the device up; for `net_virtio_user` that the socket connected.
    public func waitForLinkUp(ports: [Int]? = nil, timeout: TimeInterval = 15) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            let status = try linkStatus()
            let wanted = ports ?? Array(status.keys)
            if !wanted.isEmpty, wanted.allSatisfy({ status[$0] == true }) { return }
            if Date() >= deadline {
                throw TestpmdError.timedOut(waitingFor: "link up on ports \(ports.map { "\($0)" } ?? "all"); status \(status)",
                                            recentOutput: output.tail(2000))
            }
            Thread.sleep(forTimeInterval: 0.05)
        }
    }

    /// Sets the length of the packets tx_first/txonly generate (default 64 bytes, an IPv4/UDP
    /// frame; the byte counters count the Ethernet frame without CRC or virtio-net header).
    public func setPacketLength(_ bytes: Int) throws {
        try command("set txpkts \(bytes)")
    }

    // MARK: Shutdown

    /// Sends `quit` and waits for a clean exit; escalates to SIGTERM, then SIGKILL. Always
    /// removes the process's hugepage files and runtime directory. Returns the exit status.
    @discardableResult
    public func quit(timeout: TimeInterval = 10) -> Int32 {
        if process.isRunning {
            try? send("quit")
            if !waitForExit(timeout: timeout) { terminate() }
        }
        finish()
        return exitStatusIfDone ?? -1
    }

    /// Stops the process without ceremony (SIGTERM, then SIGKILL after 3 s) and cleans up.
    public func terminate() {
        if process.isRunning {
            kill(process.processIdentifier, SIGTERM)
            if !waitForExit(timeout: 3) {
                kill(process.processIdentifier, SIGKILL)
                _ = waitForExit(timeout: 5)
            }
        }
        finish()
    }

    private func waitForExit(timeout: TimeInterval) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning {
            if Date() >= deadline { return false }
            Thread.sleep(forTimeInterval: 0.02)
        }
        return true
    }

    private var exitStatusIfDone: Int32? {
        process.isRunning ? nil : process.terminationStatus
    }

    private func finish() {
        stateLock.lock()
        let alreadyFinished = finished
        finished = true
        stateLock.unlock()
        guard !alreadyFinished, !process.isRunning else { return }
        try? stdinPipe.fileHandleForWriting.close()
        Testpmd.removeDPDKFiles(prefix: configuration.filePrefix)
        note("exited with status \(process.terminationStatus)")
    }

    /// Removes what a (dead) DPDK primary process with `prefix` leaves behind: hugepage files
    /// `/dev/hugepages/<prefix>map_*` (testpmd leaves some even after a clean `quit`) and its
    /// runtime directory. Never call it for a prefix whose process still runs: a removed
    /// lock file lets a second primary start on the same memory.
    public static func removeDPDKFiles(prefix: String) {
        let fileManager = FileManager.default
        for directory in ["/dev/hugepages", "/mnt/huge"] {
            guard let names = try? fileManager.contentsOfDirectory(atPath: directory) else { continue }
            for name in names where name.hasPrefix(prefix + "map_") {
                try? fileManager.removeItem(atPath: directory + "/" + name)
            }
        }
        var runtimeRoots = ["/var/run/dpdk", "/run/dpdk", "/tmp/dpdk"]
        if let xdg = ProcessInfo.processInfo.environment["XDG_RUNTIME_DIR"] { runtimeRoots.append(xdg + "/dpdk") }
        for root in runtimeRoots {
            try? fileManager.removeItem(atPath: root + "/" + prefix)
        }
    }

    private func note(_ message: String) {
        print("[testpmd \(configuration.name)] \(message)")
    }

    private static let ignoreSIGPIPE: Void = {
        // A write to the stdin of a testpmd that died must fail with EPIPE, not kill the tests.
        signal(SIGPIPE, SIG_IGN)
    }()
}

// MARK: - Convenience constructors

extension Testpmd {
    /// The MAC `frontEnd` gives port `index` when none is given: 02:00:00:00:00:<index+1>.
    public static func defaultMAC(_ index: Int) -> String {
        String(format: "02:00:00:00:00:%02x", index + 1)
    }

    /// A virtio-user front-end (a "VM" without a VM): one `net_virtio_user` port per socket.
    ///
    /// - serverMode: false: testpmd connects to `sockets` (the switch listens). true
    ///   (`server=1`): testpmd creates and listens on the sockets and the switch connects; such
    ///   a testpmd blocks in start-up until every socket has a back-end, so this returns
    ///   without waiting for the prompt; call `waitForPrompt()` once the back-end runs.
    /// - forwardMode: `rxonly` (count what arrives, send nothing but tx_first bursts), `io`,
    ///   `mac`, `txonly`, ...
    /// - peerMACs: destination MAC of the packets each port generates (`--eth-peer`). By
    ///   default, with two ports each addresses the other, so a learning switch sees unicast
    ///   traffic between known MACs; otherwise testpmd's default 02:00:00:00:00:<port>.
    /// - niceness: run under nice(1) (`LowPriorityCommand`), when the test times something
    ///   else on testpmd's CPU.
    public static func frontEnd(sockets: [String], macs: [String]? = nil, peerMACs: [String]? = nil,
                                serverMode: Bool = false, cpu: Int = 0, forwardMode: String = "rxonly",
                                burst: Int = 32, queues: Int = 1, memory: TestpmdMemory = .hugepagesInMemory,
                                extraAppArguments: [String] = [], vdevOptions: [String] = [],
                                niceness: Int32? = nil, startupTimeout: TimeInterval = 30) throws -> Testpmd {
        let macs = macs ?? sockets.indices.map(defaultMAC)
        precondition(macs.count == sockets.count, "one MAC per socket")
        var vdevs: [String] = []
        for (index, socket) in sockets.enumerated() {
            var vdev = "net_virtio_user\(index),path=\(socket),queues=\(queues),mac=\(macs[index])"
            if serverMode { vdev += ",server=1" }
            // Per port (e.g. "packed_vq=1,in_order=1,mrg_rxbuf=0"); the last one applies to the rest.
            if let options = index < vdevOptions.count ? vdevOptions[index] : vdevOptions.last, !options.isEmpty {
                vdev += "," + options
            }
            vdevs.append(vdev)
        }
        var app = ["--forward-mode=\(forwardMode)", "--nb-cores=1", "--burst=\(burst)",
                   "--total-num-mbufs=8192", "--rxq=\(queues)", "--txq=\(queues)"]
        let peers = peerMACs ?? (macs.count == 2 ? [macs[1], macs[0]] : [])
        for (index, peer) in peers.enumerated() { app.append("--eth-peer=\(index),\(peer)") }
        app += extraAppArguments
        let configuration = TestpmdConfiguration(
            name: "front-end", cpu: cpu, filePrefix: uniqueFilePrefix("fe"), memory: memory,
            singleFileSegments: true, vdevs: vdevs, appArguments: app, niceness: niceness)
        return try Testpmd(configuration, waitForPrompt: !serverMode, startupTimeout: startupTimeout)
    }

    /// DPDK's own vhost-user back-end: one `net_vhost` port per socket, forwarding `io`
    /// between them (port 0 <-> port 1) once `start()` is called.
    ///
    /// - clientMode: false: testpmd creates and listens on the sockets. true (`client=1`):
    ///   testpmd connects to sockets owned by the front-end (and retries until they exist).
    public static func backEnd(sockets: [String], clientMode: Bool = false, cpu: Int = 1,
                               forwardMode: String = "io", queues: Int = 1,
                               memory: TestpmdMemory = .hugepagesInMemory, extraAppArguments: [String] = [],
                               startupTimeout: TimeInterval = 30) throws -> Testpmd {
        var vdevs: [String] = []
        for (index, socket) in sockets.enumerated() {
            var vdev = "net_vhost\(index),iface=\(socket),queues=\(queues)"
            if clientMode { vdev += ",client=1" }
            vdevs.append(vdev)
        }
        let app = ["--forward-mode=\(forwardMode)", "--nb-cores=1", "--total-num-mbufs=8192",
                   "--rxq=\(queues)", "--txq=\(queues)"] + extraAppArguments
        let configuration = TestpmdConfiguration(
            name: "back-end", cpu: cpu, filePrefix: uniqueFilePrefix("be"), memory: memory,
            singleFileSegments: true, vdevs: vdevs, appArguments: app)
        return try Testpmd(configuration, waitForPrompt: true, startupTimeout: startupTimeout)
    }
}

// MARK: - Environment

public enum IntegrationEnvironment {
    public static let testpmdPath = "/usr/bin/dpdk-testpmd"
    /// 2 MiB pages the integration tests want free: two testpmd processes with
    /// `--total-num-mbufs=8192` take about 20 pages each; leave room for the switch.
    public static let requiredFreeHugepages = 128

    /// nil when integration tests with dpdk-testpmd can run here; otherwise why not.
    public static func skipReason() -> String? {
        if geteuid() != 0 {
            return "integration tests need root (DPDK hugepages, vhost-user sockets); euid is \(geteuid()). Run scripts/test.sh as root."
        }
        if !FileManager.default.isExecutableFile(atPath: testpmdPath) {
            return "\(testpmdPath) not found: install the Debian package dpdk-dev (scripts/setup.sh does)"
        }
        let info = hugepageInfo()
        if info.pageSizeKiB != 2048 {
            return "default hugepage size is \(info.pageSizeKiB) KiB, expected 2048"
        }
        if info.free < requiredFreeHugepages {
            return "only \(info.free) free 2 MiB hugepages (of \(info.total)); need \(requiredFreeHugepages). Run scripts/setup.sh as root."
        }
        if !hugetlbfsMounted() {
            return "hugetlbfs is not mounted at /dev/hugepages. Run scripts/setup.sh as root."
        }
        return nil
    }

    /// Prints and returns the skip reason, for `throw XCTSkip(reason)` in a test.
    public static func printedSkipReason(_ test: String = #function) -> String? {
        guard let reason = skipReason() else { return nil }
        print("SKIP \(test): \(reason)")
        return reason
    }

    /// The default-size hugepage pool. `reserved` pages are free but promised to mappings.
    public static func hugepageInfo() -> (total: Int, free: Int, pageSizeKiB: Int, reserved: Int) {
        guard let text = try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8) else { return (0, 0, 0, 0) }
        var total = 0, free = 0, size = 0, reserved = 0
        for line in text.split(separator: "\n") {
            let parts = line.split(whereSeparator: { $0 == " " || $0 == ":" })
            guard parts.count >= 2, let value = Int(parts[1]) else { continue }
            switch parts[0] {
            case "HugePages_Total": total = value
            case "HugePages_Free": free = value
            case "HugePages_Rsvd": reserved = value
            case "Hugepagesize": size = value
            default: break
            }
        }
        return (total, free, size, reserved)
    }

    public static func hugetlbfsMounted(at path: String = "/dev/hugepages") -> Bool {
        guard let mounts = try? String(contentsOfFile: "/proc/mounts", encoding: .utf8) else { return false }
        return mounts.split(separator: "\n").contains { line in
            let fields = line.split(separator: " ")
            return fields.count >= 3 && fields[1] == path && fields[2] == "hugetlbfs"
        }
    }
}

// MARK: - Temporary socket directory

/// A fresh directory for vhost-user sockets, removed on `remove()` or deinit. Kept short
/// (`/tmp/vst-XXXXXXXX`) because a unix socket path must fit in 108 bytes.
public final class TemporarySocketDirectory: @unchecked Sendable {
    public let path: String

    public init(prefix: String = "vst") throws {
        let name = "\(prefix)-\(UUID().uuidString.prefix(8).lowercased())"
        path = "/tmp/" + name
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false)
    }

    /// The path of `name` inside the directory.
    public func socket(_ name: String) -> String {
        path + "/" + name
    }

    public func remove() {
        try? FileManager.default.removeItem(atPath: path)
    }

    deinit {
        remove()
    }
}

// MARK: - Internals

/// testpmd's accumulated output, appended by the reader thread and searched by the test.
private final class OutputBuffer: @unchecked Sendable {
    private let lock = NSLock()
    private var data = Data()
    private var closed = false

    func append(_ chunk: Data) {
        lock.lock(); defer { lock.unlock() }
        data.append(chunk)
    }

    func markClosed() {
        lock.lock(); defer { lock.unlock() }
        closed = true
    }

    var isClosed: Bool {
        lock.lock(); defer { lock.unlock() }
        return closed
    }

    var count: Int {
        lock.lock(); defer { lock.unlock() }
        return data.count
    }

    /// The offset just past the first occurrence of `needle` at or after `from`.
    func find(_ needle: Data, from: Int) -> Int? {
        lock.lock(); defer { lock.unlock() }
        guard from <= data.count,
              let range = data.range(of: needle, options: [], in: (data.startIndex + from)..<data.endIndex)
        else { return nil }
        return range.upperBound - data.startIndex
    }

    func text(from: Int, to: Int? = nil) -> String {
        lock.lock(); defer { lock.unlock() }
        let end = min(to ?? data.count, data.count)
        guard from < end else { return "" }
        return String(decoding: data[(data.startIndex + from)..<(data.startIndex + end)], as: UTF8.self)
    }

    func tail(_ bytes: Int = 4000) -> String {
        let total = count
        return text(from: max(0, total - bytes))
    }
}

private final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var value = 0

    func next() -> Int {
        lock.lock(); defer { lock.unlock() }
        value += 1
        return value
    }
}
