import Foundation
import Glibc

/// A real Linux guest in QEMU whose virtio-net NIC is a vhost-user front-end of the switch.
///
/// The guest is a Debian kernel (linux-image-amd64) with a busybox-static initramfs built by
/// `scripts/guest/build-initramfs.sh` and cached in `<package>/.build-guest/`. Its /init
/// (scripts/guest/init) reads the test from the kernel command line (`vs.ip=`, `vs.peer=`,
/// `vs.mode=answer|ping`, ...) and prints lines starting with "VS-" on the serial console.
///
/// On these machines /dev/kvm cannot run a stock kernel (a software hypervisor without vmx/svm),
/// so the guest runs under TCG (`-accel tcg -cpu max`, see `Accelerator.detected`), with the NIC
/// on legacy interrupts (`vectors=0`: QEMU 7.2 with TCG and vhost-user crashes with MSI-X).
/// Guest RAM is a shared memfd so the switch can map it.
public final class QemuGuest: @unchecked Sendable {
    public static let qemuPath = "/usr/bin/qemu-system-x86_64"
    static let debianPackages = ["qemu-system-x86", "linux-image-amd64", "busybox-static", "cpio"]

    /// Who listens on the vhost-user socket.
    public enum SocketMode: Sendable {
        /// The switch listens (a server-mode port); QEMU connects.
        case qemuConnects
        /// QEMU listens (`server=on`); the switch's client-mode port connects.
        case qemuListens
    }

    public struct Image: Sendable {
        public var kernel: String
        public var initrd: String
        public var kernelVersion: String
        /// The initramfs holds iperf3 (the host had it when the image was built).
        public var hasIperf3: Bool
        /// The initramfs holds 8021q and its dependencies, not loaded at boot: a guest loads
        /// them with `GuestCommandChannel.loadVLANModule()` (false: the kernel has no 8021q).
        public var hasVLANModule: Bool
    }

    public struct Configuration: Sendable {
        public var name: String
        public var socketPath: String
        public var socketMode: SocketMode = .qemuConnects
        public var mac: String
        /// `vs.KEY=VALUE` words for the guest's /init (without the `vs.` prefix).
        public var guestParameters: [(String, String)] = []
        public var memoryMiB: Int = 256
        /// Start as a migration destination listening on tcp:127.0.0.1:PORT.
        public var incomingPort: Int? = nil
        /// Extra virtio-net-pci properties, e.g. [("csum", "off")].
        public var nicProperties: [(String, String)] = []
        /// The CPU model under TCG (KVM always uses "host"). "max" emulates every feature QEMU
        /// knows; "qemu64" runs guest networking 3-4x faster under TCG (measured with iperf3).
        public var tcgCpuModel: String = "max"
        /// A second serial port (ttyS1) on a unix socket that the guest reads shell commands
        /// from (`vs.commands=1`); drive it with `GuestCommandChannel`.
        public var commandChannel: Bool = false

        public init(name: String, socketPath: String, socketMode: SocketMode = .qemuConnects, mac: String,
                    guestParameters: [(String, String)] = [], memoryMiB: Int = 256, incomingPort: Int? = nil,
                    nicProperties: [(String, String)] = [], tcgCpuModel: String = "max") {
            self.name = name
            self.socketPath = socketPath
            self.socketMode = socketMode
            self.mac = mac
            self.guestParameters = guestParameters
            self.memoryMiB = memoryMiB
            self.incomingPort = incomingPort
            self.nicProperties = nicProperties
            self.tcgCpuModel = tcgCpuModel
        }
    }

    public let configuration: Configuration
    public let directory: String
    public let qmpPath: String
    /// The unix socket of the guest's ttyS1 (QEMU listens) when `commandChannel` is set.
    public let commandSocketPath: String?
    public let arguments: [String]
    public let startTime: Date
    public let accelerator: Accelerator
    private let process: Process
    private let serialLog = OutputCollector()
    private let stderrLog = OutputCollector()
    private var qmpClient: QmpClient?

    // MARK: Environment

    /// The package root (this file is Tests/TestSupport/QemuGuest.swift).
    public static var packageRoot: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().path
    }

    /// nil when QEMU guests can run here. Installs the Debian packages when they are missing
    /// and we are root with apt-get (as scripts/setup.sh does); otherwise says why not.
    public static func skipReason() -> String? {
        if geteuid() != 0 { return "QEMU guest tests need root (network namespaces, veth, apt-get); euid is \(geteuid())" }
        if !haveEverything() {
            guard FileManager.default.isExecutableFile(atPath: "/usr/bin/apt-get") else {
                return "qemu-system-x86_64, a kernel in /boot or busybox-static are missing and apt-get is not available"
            }
            print("[qemu] installing \(debianPackages.joined(separator: " ")) (scripts/setup.sh normally does)")
            let env = ["DEBIAN_FRONTEND=noninteractive"]
            _ = try? run(["/usr/bin/env"] + env + ["apt-get", "install", "-y", "-q", "--no-install-recommends"] + debianPackages)
            if !haveEverything() {
                _ = try? run(["/usr/bin/env"] + env + ["apt-get", "update", "-q"])
                let result = try? run(["/usr/bin/env"] + env + ["apt-get", "install", "-y", "-q", "--no-install-recommends"] + debianPackages)
                if !haveEverything() {
                    return "QEMU is not installed and could not be installed: \(result?.output.suffix(500) ?? "apt-get did not run")"
                }
            }
        }
        return nil
    }

    /// nil when the host has iperf3 (build-initramfs.sh copies it into the guest); installs
    /// Debian's iperf3 when missing and we are root with apt-get, otherwise says why not.
    public static func iperf3SkipReason() -> String? {
        let path = "/usr/bin/iperf3"
        if FileManager.default.isExecutableFile(atPath: path) { return nil }
        guard geteuid() == 0, FileManager.default.isExecutableFile(atPath: "/usr/bin/apt-get") else {
            return "iperf3 is not installed (apt-get install iperf3; scripts/setup.sh does)"
        }
        print("[qemu] installing iperf3 (scripts/setup.sh normally does)")
        let install = ["/usr/bin/env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", "-q", "--no-install-recommends", "iperf3"]
        var result = try? run(install)
        if !FileManager.default.isExecutableFile(atPath: path) {
            _ = try? run(["/usr/bin/env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "update", "-q"])
            result = try? run(install)
        }
        return FileManager.default.isExecutableFile(atPath: path)
            ? nil : "iperf3 could not be installed: \(result?.output.suffix(500) ?? "apt-get did not run")"
    }

    /// Prints and returns the skip reason.
    public static func printedSkipReason(_ test: String = #function) -> String? {
        guard let reason = skipReason() else { return nil }
        print("SKIP \(test): \(reason)")
        return reason
    }

    static func haveEverything() -> Bool {
        let fm = FileManager.default
        let kernels = ((try? fm.contentsOfDirectory(atPath: "/boot")) ?? []).filter { $0.hasPrefix("vmlinuz-") }
        return fm.isExecutableFile(atPath: qemuPath) && !kernels.isEmpty
            && (fm.isExecutableFile(atPath: "/bin/busybox") || fm.isExecutableFile(atPath: "/usr/bin/busybox"))
            && fm.isExecutableFile(atPath: "/usr/bin/cpio")
    }

    /// Builds (or reuses) the guest kernel + initramfs in `<package>/.build-guest`.
    public static func image() throws -> Image {
        let script = packageRoot + "/scripts/guest/build-initramfs.sh"
        let output = packageRoot + "/.build-guest"
        let result = try run(["/bin/bash", script, output])
        guard result.status == 0 else { throw QemuError("\(script) failed (\(result.status)):\n\(result.output)") }
        let line = result.output.split(separator: "\n").last { $0.hasPrefix("kernel=") } ?? ""
        var fields: [String: String] = [:]
        for word in line.split(separator: " ") {
            let parts = word.split(separator: "=", maxSplits: 1)
            if parts.count == 2 { fields[String(parts[0])] = String(parts[1]) }
        }
        guard let kernel = fields["kernel"], let initrd = fields["initrd"] else {
            throw QemuError("\(script) said nothing usable:\n\(result.output)")
        }
        return Image(kernel: kernel, initrd: initrd, kernelVersion: fields["version"] ?? "?", hasIperf3: fields["iperf3"] == "yes",
                     hasVLANModule: fields["vlan"] == "yes")
    }

    /// A TCP port on 127.0.0.1 that was free a moment ago (for `-incoming`).
    public static func freeLocalPort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw QemuError("socket: errno \(errno)") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { raw -> Int32 in
                guard bind(fd, raw, length) == 0 else { return -1 }
                return getsockname(fd, raw, &length)
            }
        }
        guard bound == 0 else { throw QemuError("bind/getsockname: errno \(errno)") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    /// How QEMU runs the guest here: KVM only where it really works (/dev/kvm usable and a CPU
    /// with vmx or svm; the kvm_pvm software hypervisor of these machines has neither flag and
    /// cannot run a stock kernel), TCG otherwise. VHOST_SWITCH_QEMU_ACCEL=tcg|kvm overrides.
    public enum Accelerator: String, Sendable {
        case kvm, tcg

        public static var detected: Accelerator {
            if let forced = ProcessInfo.processInfo.environment["VHOST_SWITCH_QEMU_ACCEL"], let value = Accelerator(rawValue: forced) {
                return value
            }
            guard access("/dev/kvm", R_OK | W_OK) == 0,
                  let cpuinfo = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return .tcg }
            let flags = cpuinfo.split(separator: "\n").first { $0.hasPrefix("flags") }?.split(separator: " ") ?? []
            return flags.contains("vmx") || flags.contains("svm") ? .kvm : .tcg
        }
    }

    // MARK: Life cycle

    /// Starts QEMU. Returns at once; wait for the guest with `waitForSerial("VS-READY")`
    /// (or, on a migration destination, for the migration to complete).
    public init(_ configuration: Configuration, image: Image) throws {
        self.configuration = configuration
        directory = NSTemporaryDirectory() + "qemu-\(configuration.name)-" + String(UInt32.random(in: 0...UInt32.max), radix: 36)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        qmpPath = directory + "/qmp.sock"
        commandSocketPath = configuration.commandChannel ? directory + "/cmd.sock" : nil
        let memory = "\(configuration.memoryMiB)M"
        let chardev = "socket,id=chr0,path=\(configuration.socketPath)" + (configuration.socketMode == .qemuListens ? ",server=on" : "")
        let parameters = (configuration.guestParameters + (configuration.commandChannel ? [("commands", "1")] : [])).map { "vs.\($0.0)=\($0.1)" }.joined(separator: " ")
        // QEMU 7.2 with TCG and vhost-user segfaults when the NIC starts with MSI-X: legacy
        // interrupts (vectors=0) under TCG.
        let accelerator = Accelerator.detected
        self.accelerator = accelerator
        let nicInterrupts = accelerator == .tcg ? ",vectors=0" : ""
        let nicProperties = configuration.nicProperties.map { ",\($0.0)=\($0.1)" }.joined()
        var arguments = [
            "-name", configuration.name,
            "-nodefaults", "-no-user-config", "-no-reboot",
            "-accel", accelerator.rawValue, "-cpu", accelerator == .kvm ? "host" : configuration.tcgCpuModel, "-smp", "1", "-m", memory,
            "-object", "memory-backend-memfd,id=mem,size=\(memory),share=on", "-numa", "node,memdev=mem",
            "-chardev", chardev,
            "-netdev", "vhost-user,id=net0,chardev=chr0",
            "-device", "virtio-net-pci,netdev=net0,mac=\(configuration.mac)\(nicInterrupts)\(nicProperties),romfile=",
            "-kernel", image.kernel, "-initrd", image.initrd,
            "-append", "console=ttyS0 quiet panic=-1 \(parameters)",
            "-display", "none", "-monitor", "none", "-serial", "stdio",
            "-qmp", "unix:\(qmpPath),server=on,wait=off",
        ]
        if let port = configuration.incomingPort { arguments += ["-incoming", "tcp:127.0.0.1:\(port)"] }
        if let commandSocketPath { arguments += ["-serial", "unix:\(commandSocketPath),server=on,wait=off"] }
        self.arguments = arguments
        process = Process()
        process.executableURL = URL(fileURLWithPath: Self.qemuPath)
        process.arguments = arguments
        let serialPipe = Pipe(), errorPipe = Pipe()
        process.standardOutput = serialPipe
        process.standardError = errorPipe
        process.standardInput = FileHandle.nullDevice
        serialLog.attach(serialPipe.fileHandleForReading)
        stderrLog.attach(errorPipe.fileHandleForReading)
        startTime = Date()
        try process.run()
    }

    deinit { terminate() }

    public var pid: Int32 { process.processIdentifier }
    public var isRunning: Bool { process.isRunning }
    /// Everything the guest printed on ttyS0 (escape sequences and all).
    public var serial: String { serialLog.text }
    /// QEMU's own messages (stderr).
    public var qemuLog: String { stderrLog.text }
    /// Serial lines that start with "VS-" (the test's own output).
    public var testLines: [String] {
        serial.split(whereSeparator: { $0.isNewline }).map(String.init).compactMap { line in
            line.range(of: "VS-").map { String(line[$0.lowerBound...]) }
        }
    }

    /// Waits until the serial console shows `text`; returns the seconds since QEMU started.
    @discardableResult
    public func waitForSerial(_ text: String, timeout: TimeInterval = 120) throws -> TimeInterval {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if serial.contains(text) { return Date().timeIntervalSince(startTime) }
            if !process.isRunning {
                throw QemuError("QEMU \(configuration.name) exited (\(process.terminationStatus)) before the guest said \"\(text)\":\n\(describe())")
            }
            Thread.sleep(forTimeInterval: 0.05)
        }
        throw QemuError("guest \(configuration.name) did not say \"\(text)\" within \(timeout) s:\n\(describe())")
    }

    /// The QMP client (connected and negotiated on first use).
    public func qmp(timeout: TimeInterval = 30) throws -> QmpClient {
        if let qmpClient { return qmpClient }
        let deadline = Date().addingTimeInterval(timeout)
        var lastError: (any Error)?
        while Date() < deadline {
            if !process.isRunning { throw QemuError("QEMU \(configuration.name) exited before QMP was up:\n\(describe())") }
            do {
                let client = try QmpClient(path: qmpPath)
                qmpClient = client
                return client
            } catch {
                lastError = error
                Thread.sleep(forTimeInterval: 0.05)
            }
        }
        throw QemuError("QMP at \(qmpPath) not reachable within \(timeout) s: \(String(describing: lastError))")
    }

    /// Ends QEMU (QMP quit, then SIGTERM, then SIGKILL) and removes its directory.
    public func terminate() {
        if process.isRunning {
            if let qmpClient { _ = try? qmpClient.execute("quit", timeout: 2) }
            let soft = Date().addingTimeInterval(2)
            while process.isRunning && Date() < soft { Thread.sleep(forTimeInterval: 0.02) }
            if process.isRunning { kill(process.processIdentifier, SIGTERM) }
            let hard = Date().addingTimeInterval(5)
            while process.isRunning && Date() < hard { Thread.sleep(forTimeInterval: 0.02) }
            if process.isRunning { kill(process.processIdentifier, SIGKILL); process.waitUntilExit() }
        }
        qmpClient?.close()
        qmpClient = nil
        try? FileManager.default.removeItem(atPath: directory)
    }

    public func describe() -> String {
        "--- qemu \(configuration.name) stderr ---\n\(qemuLog)\n--- serial (VS- lines) ---\n\(testLines.joined(separator: "\n"))\n--- serial tail ---\n\(String(serial.suffix(1500)))"
    }

    // MARK: Migration

    public struct MigrationResult: CustomStringConvertible, Sendable {
        public var status: String
        public var totalTimeMs: Int?
        public var downtimeMs: Int?
        public var setupTimeMs: Int?
        public var transferredBytes: Int?
        public var errorDescription: String?
        public var description: String {
            "status=\(status) total=\(totalTimeMs.map { "\($0) ms" } ?? "?") downtime=\(downtimeMs.map { "\($0) ms" } ?? "?") "
                + "setup=\(setupTimeMs.map { "\($0) ms" } ?? "?") transferred=\(transferredBytes.map { "\($0 / 1024) KiB" } ?? "?")"
                + (errorDescription.map { " error=\($0)" } ?? "")
        }
    }

    /// Migrates this (running) guest to a destination QEMU listening on tcp:127.0.0.1:`port`
    /// and waits until the migration completes or fails.
    public func migrate(toPort port: Int, downtimeLimitMs: Int = 50, maxBandwidth: Int = 1 << 30,
                        timeout: TimeInterval = 120) throws -> MigrationResult {
        try startMigration(toPort: port, downtimeLimitMs: downtimeLimitMs, maxBandwidth: maxBandwidth)
        return try waitForMigration(timeout: timeout)
    }

    /// Starts a migration (QMP migrate returns at once); `maxBandwidth` in bytes per second.
    public func startMigration(toPort port: Int, downtimeLimitMs: Int = 50, maxBandwidth: Int = 1 << 30) throws {
        let qmp = try qmp()
        try qmp.check("migrate-set-parameters", ["downtime-limit": downtimeLimitMs, "max-bandwidth": maxBandwidth])
        try qmp.check("migrate", ["uri": "tcp:127.0.0.1:\(port)"])
    }

    /// query-migrate, once.
    public func migrationStatus() throws -> MigrationResult {
        let info = try qmp().check("query-migrate")
        let ram = info["ram"] as? [String: Any]
        return MigrationResult(status: info["status"] as? String ?? "none", totalTimeMs: info["total-time"] as? Int,
                               downtimeMs: info["downtime"] as? Int, setupTimeMs: info["setup-time"] as? Int,
                               transferredBytes: ram?["transferred"] as? Int, errorDescription: info["error-desc"] as? String)
    }

    /// Polls query-migrate until the migration completed, failed or was cancelled.
    public func waitForMigration(timeout: TimeInterval = 120) throws -> MigrationResult {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let result = try migrationStatus()
            if ["completed", "failed", "cancelled"].contains(result.status) { return result }
            Thread.sleep(forTimeInterval: 0.05)
        }
        throw QemuError("migration did not finish within \(timeout) s: \(try migrationStatus())")
    }

    /// QEMU's view of the NIC's split rings (QMP x-query-virtio-queue-status, QEMU 7.2+):
    /// one line per queue with last-avail-idx (what GET_VRING_BASE returned on a stopped
    /// vhost device), used-idx (read from guest memory) and inuse. nil where unsupported.
    public func virtioQueueSummary(queues: [Int] = [0, 1]) -> String? {
        guard let qmp = try? qmp(), let reply = try? qmp.execute("x-query-virtio"),
              let devices = reply["return"] as? [[String: Any]],
              let path = devices.first(where: { ($0["name"] as? String) == "virtio-net" })?["path"] as? String else { return nil }
        return queues.map { queue -> String in
            guard let status = try? qmp.check("x-query-virtio-queue-status", ["path": path, "queue": queue]) else {
                return "queue \(queue): ?"
            }
            let fields = ["last-avail-idx", "shadow-avail-idx", "used-idx", "signalled-used", "inuse"]
            return "queue \(queue): " + fields.map { "\($0)=\(status[$0].map { "\($0)" } ?? "?")" }.joined(separator: " ")
        }.joined(separator: "; ")
    }

    /// The run state from QMP query-status ("running", "inmigrate", "postmigrate", ...).
    public func runState() throws -> String {
        try qmp().check("query-status")["status"] as? String ?? "?"
    }

    // MARK: Helpers

    @discardableResult
    static func run(_ command: [String]) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: command[0])
        process.arguments = Array(command.dropFirst())
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    public struct QemuError: Error, CustomStringConvertible {
        public var description: String
        public init(_ description: String) { self.description = description }
    }
}

/// A minimal QMP client: JSON lines over QEMU's unix socket. Commands are synchronous;
/// asynchronous events that arrive meanwhile are kept in `events`.
public final class QmpClient: @unchecked Sendable {
    private let fd: Int32
    private var buffer = [UInt8]()
    private let lock = NSLock()
    public private(set) var events: [[String: Any]] = []
    public let greeting: [String: Any]

    public init(path: String) throws {
        let descriptor = try Self.connectUnix(path)
        var pending = [UInt8]()
        do {
            greeting = try Self.readMessage(fd: descriptor, buffer: &pending, deadline: Date().addingTimeInterval(10))
        } catch {
            Glibc.close(descriptor)
            throw error
        }
        fd = descriptor
        buffer = pending
        do {
            _ = try execute("qmp_capabilities")
        } catch {
            close()
            throw error
        }
    }

    static func connectUnix(_ path: String) throws -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw QemuGuest.QemuError("socket: errno \(errno)") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            Glibc.close(fd)
            throw QemuGuest.QemuError("QMP socket path too long: \(path)")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (index, byte) in bytes.enumerated() { raw[index] = byte }
            raw[bytes.count] = 0
        }
        let connected = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard connected == 0 else {
            let error = errno
            Glibc.close(fd)
            throw QemuGuest.QemuError("connect \(path): errno \(error)")
        }
        return fd
    }

    deinit { close() }

    private var closed = false
    public func close() {
        lock.lock()
        defer { lock.unlock() }
        if !closed { closed = true; Glibc.close(fd) }
    }

    /// Sends a command and returns the whole reply ({"return": ...} or {"error": ...}).
    public func execute(_ command: String, _ arguments: [String: Any]? = nil, timeout: TimeInterval = 30) throws -> [String: Any] {
        lock.lock()
        defer { lock.unlock() }
        var message: [String: Any] = ["execute": command]
        if let arguments { message["arguments"] = arguments }
        var data = try JSONSerialization.data(withJSONObject: message)
        data.append(0x0A)
        try data.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let sent = send(fd, raw.baseAddress! + offset, raw.count - offset, Int32(MSG_NOSIGNAL))
                if sent < 0 {
                    if errno == EINTR { continue }
                    throw QemuGuest.QemuError("QMP send \(command): errno \(errno)")
                }
                offset += sent
            }
        }
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            let reply = try Self.readMessage(fd: fd, buffer: &buffer, deadline: deadline)
            if reply["event"] != nil { events.append(reply); continue }
            return reply
        }
    }

    /// Sends a command; returns its "return" object, throws on {"error": ...}.
    @discardableResult
    public func check(_ command: String, _ arguments: [String: Any]? = nil, timeout: TimeInterval = 30) throws -> [String: Any] {
        let reply = try execute(command, arguments, timeout: timeout)
        if let error = reply["error"] as? [String: Any] {
            throw QemuGuest.QemuError("QMP \(command) failed: \(error["class"] ?? "?"): \(error["desc"] ?? "?")")
        }
        return reply["return"] as? [String: Any] ?? [:]
    }

    public func eventNames() -> [String] {
        lock.lock()
        defer { lock.unlock() }
        return events.compactMap { $0["event"] as? String }
    }

    private static func readMessage(fd: Int32, buffer: inout [UInt8], deadline: Date) throws -> [String: Any] {
        while true {
            if let newline = buffer.firstIndex(of: 0x0A) {
                let line = Array(buffer[..<newline])
                buffer.removeSubrange(...newline)
                let trimmed = line.filter { $0 != 0x0D }
                if trimmed.isEmpty { continue }
                guard let object = try JSONSerialization.jsonObject(with: Data(trimmed)) as? [String: Any] else {
                    throw QemuGuest.QemuError("QMP sent a non-object: \(String(decoding: trimmed, as: UTF8.self))")
                }
                return object
            }
            let remaining = deadline.timeIntervalSinceNow
            guard remaining > 0 else { throw QemuGuest.QemuError("QMP reply timed out") }
            var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&poller, 1, Int32(min(remaining, 1) * 1000) + 1)
            if ready < 0 && errno != EINTR { throw QemuGuest.QemuError("QMP poll: errno \(errno)") }
            if ready <= 0 { continue }
            var chunk = [UInt8](repeating: 0, count: 65536)
            let count = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count < 0 {
                if errno == EINTR || errno == EAGAIN { continue }
                throw QemuGuest.QemuError("QMP recv: errno \(errno)")
            }
            if count == 0 { throw QemuGuest.QemuError("QMP connection closed by QEMU") }
            buffer.append(contentsOf: chunk[..<count])
        }
    }
}

/// Continuous `ping -D -O` inside a network namespace, parsed into received sequence numbers
/// and arrival times: the longest gap and the lost count of a migration.
public final class NamespacePinger: @unchecked Sendable {
    private let process: Process
    private let log = OutputCollector()
    public let interval: Double

    /// `payloadBytes`: ICMP payload size (ping -s), default 56.
    public init(namespace: String, target: String, interval: Double = 0.1, payloadBytes: Int? = nil) throws {
        self.interval = interval
        process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
        process.arguments = ["netns", "exec", namespace, "ping", "-D", "-O", "-n", "-i", String(interval), "-W", "1"]
            + (payloadBytes.map { ["-s", String($0)] } ?? []) + [target]
        try log.run(process)
    }

    deinit { stop() }

    public var output: String { log.text }

    /// (sequence number, arrival time) of every reply so far.
    public var replies: [(seq: Int, time: Double)] {
        output.split(separator: "\n").compactMap { line -> (Int, Double)? in
            guard line.contains("bytes from"), let open = line.firstIndex(of: "["), let close = line.firstIndex(of: "]"),
                  let time = Double(line[line.index(after: open)..<close]),
                  let seqRange = line.range(of: "icmp_seq=") else { return nil }
            let digits = line[seqRange.upperBound...].prefix { $0.isNumber }
            guard let seq = Int(digits) else { return nil }
            return (seq, time)
        }
    }

    /// Waits until `count` replies arrived in total.
    public func waitForReplies(_ count: Int, timeout: TimeInterval) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if replies.count >= count { return true }
            Thread.sleep(forTimeInterval: 0.05)
        }
        return false
    }

    public struct Summary: CustomStringConvertible, Sendable {
        public var received: Int
        /// Replies ping marked "DUP!" (a duplicated frame or used entry).
        public var duplicates: Int
        /// Replies whose payload ping found wrong ("wrong data byte", "wrong total length").
        public var corrupt: Int
        /// Sequence numbers between the first and the last reply that never got one.
        public var lost: [Int]
        public var longestGap: Double
        public var longestGapAfterSeq: Int
        public var description: String {
            "received=\(received) lost=\(lost.count)\(lost.isEmpty ? "" : " \(lost)") duplicates=\(duplicates) corrupt=\(corrupt) longest gap=\(String(format: "%.0f", longestGap * 1000)) ms (after icmp_seq=\(longestGapAfterSeq))"
        }
    }

    public func summary() -> Summary {
        let all = replies
        let seqs = Set(all.map(\.seq))
        var lost: [Int] = []
        if let first = seqs.min(), let last = seqs.max() {
            lost = (first...last).filter { !seqs.contains($0) }
        }
        var gap = 0.0, after = 0
        for (previous, next) in zip(all, all.dropFirst()) where next.time - previous.time > gap {
            gap = next.time - previous.time
            after = previous.seq
        }
        let lines = output.split(separator: "\n")
        return Summary(received: all.count, duplicates: lines.filter { $0.contains("DUP!") }.count,
                       corrupt: lines.filter { $0.contains("wrong data") || $0.contains("wrong total length") }.count,
                       lost: lost, longestGap: gap, longestGapAfterSeq: after)
    }

    public func stop() {
        if process.isRunning {
            kill(process.processIdentifier, SIGINT)
            let deadline = Date().addingTimeInterval(3)
            while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.02) }
            if process.isRunning { kill(process.processIdentifier, SIGKILL); process.waitUntilExit() }
        }
    }
}

/// Reads the switch's event history (GET /v1/events, Accept: application/json) over its
/// API unix socket with curl.
public enum SwitchEventHistory {
    public struct Event: CustomStringConvertible, Sendable {
        public var id: Int
        public var type: String
        public var port: String?
        public var time: String
        public var dataDescription: String
        public var description: String { "#\(id) \(time) \(port ?? "-") \(type)\(dataDescription.isEmpty ? "" : " \(dataDescription)")" }
    }

    /// GET `path` (e.g. "/v1/fdb") with Accept: application/json; the parsed JSON.
    public static func getJSON(apiSocket: String, path: String) throws -> Any {
        let reply = try SwitchAPIClient(socketPath: apiSocket).request("GET", path)
        guard let json = reply.json else { throw QemuGuest.QemuError("GET \(path) did not return JSON: \(reply)") }
        return json
    }

    public static func fetch(apiSocket: String, query: String = "") throws -> [Event] {
        let json = try getJSON(apiSocket: apiSocket, path: "/v1/events" + query)
        let list = (json as? [[String: Any]]) ?? ((json as? [String: Any])?["events"] as? [[String: Any]])
        guard let list else { throw QemuGuest.QemuError("GET /v1/events did not return an array: \(json)") }
        return list.map { object in
            var data = ""
            if let payload = object["data"], let bytes = try? JSONSerialization.data(withJSONObject: payload, options: [.sortedKeys]) {
                data = String(decoding: bytes, as: UTF8.self)
                if data == "{}" { data = "" }
            }
            return Event(id: (object["id"] as? Int) ?? -1, type: object["type"] as? String ?? "?", port: object["port"] as? String,
                         time: object["time"] as? String ?? "?", dataDescription: data)
        }
    }
}
