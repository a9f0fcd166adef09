import CVhostShims
import Glibc
import VhostSystem

/// This process: its environment, standard streams and exit, for short-lived tools (the CNI
/// plugin) that talk to their caller through stdin, stdout and the environment.
public enum CurrentProcess {
    /// The environment as NAME=VALUE strings, in the order the kernel holds them.
    public static func environmentEntries() -> [String] {
        guard let bytes = try? FileSystem.readFile("/proc/self/environ", maxBytes: 1 << 20) else { return [] }
        return bytes.split(separator: 0, omittingEmptySubsequences: true).map { String(decoding: $0, as: UTF8.self) }
    }

    /// The environment as a dictionary (the first of duplicate names wins, like getenv).
    public static func environment() -> [String: String] {
        var result: [String: String] = [:]
        for entry in environmentEntries() {
            guard let equals = entry.firstIndex(of: "=") else { continue }
            let name = String(entry[..<equals])
            if result[name] == nil { result[name] = String(entry[entry.index(after: equals)...]) }
        }
        return result
    }

    /// Reads standard input to its end; more than `maxBytes` is EFBIG.
    public static func readStandardInput(maxBytes: Int) throws(SystemError) -> [UInt8] {
        var result: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 16384)
        while true {
            let n = try systemCall("read(stdin)") { chunk.withUnsafeMutableBytes { Glibc.read(0, $0.baseAddress, $0.count) } }
            if n == 0 { return result }
            result.append(contentsOf: chunk[0..<n])
            if result.count > maxBytes { throw SystemError("read(stdin): more than \(maxBytes) bytes", errno: EFBIG) }
        }
    }

    public static func writeStandardOutput(_ text: String) { writeAll(1, Array(text.utf8)) }
    public static func writeStandardError(_ text: String) { writeAll(2, Array(text.utf8)) }

    private static func writeAll(_ fd: Int32, _ bytes: [UInt8]) {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if n < 0 && vhost_shims_errno() == EINTR { continue }
            if n <= 0 { return }
            offset += n
        }
    }

    /// A closed pipe or socket becomes EPIPE instead of killing the process.
    public static func ignoreBrokenPipe() { signal(SIGPIPE, SIG_IGN) }

    public static func exit(_ status: Int32) -> Never { Glibc.exit(status) }

    public static var userID: UInt32 { getuid() }
    public static var groupID: UInt32 { getgid() }
}

/// Runs another program with a given environment and standard input and collects its
/// output: the way a CNI plugin delegates to an IPAM plugin.
public enum ChildProcess {
    public struct Outcome: Sendable {
        /// The exit code, or 128 + the signal number when a signal ended it.
        public var status: Int32
        public var output: [UInt8]
        public var errorOutput: [UInt8]
    }

    /// Spawns `path` with `arguments` (argv[1...]) and `environment` (NAME=VALUE), writes
    /// `input` to its stdin and reads stdout and stderr until it exits. At `deadline` the child
    /// is killed and ETIMEDOUT thrown. SIGPIPE is reset to its default in the child.
    public static func run(path: String, arguments: [String] = [], environment: [String], input: [UInt8],
                           deadline: UInt64, maxOutputBytes: Int = 1 << 20) throws(SystemError) -> Outcome {
        let stdinPipe = try makePipe()
        let stdoutPipe = try makePipe()
        let stderrPipe = try makePipe()

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, stdinPipe.read.rawValue, 0)
        posix_spawn_file_actions_adddup2(&actions, stdoutPipe.write.rawValue, 1)
        posix_spawn_file_actions_adddup2(&actions, stderrPipe.write.rawValue, 2)

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var defaults = sigset_t()
        sigemptyset(&defaults)
        sigaddset(&defaults, SIGPIPE)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        var mask = sigset_t()
        sigemptyset(&mask)
        posix_spawnattr_setsigmask(&attributes, &mask)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))

        let argv: [UnsafeMutablePointer<CChar>?] = ([path] + arguments).map { strdup($0) } + [nil]
        let envp: [UnsafeMutablePointer<CChar>?] = environment.map { strdup($0) } + [nil]
        defer {
            for pointer in argv { free(pointer) }
            for pointer in envp { free(pointer) }
        }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, path, &actions, &attributes, argv, envp)
        stdinPipe.read.close()
        stdoutPipe.write.close()
        stderrPipe.write.close()
        guard spawned == 0 else { throw SystemError("posix_spawn(\(path))", errno: spawned) }

        var output: [UInt8] = []
        var errorOutput: [UInt8] = []
        do {
            try stdinPipe.write.setNonBlocking()
            try stdoutPipe.read.setNonBlocking()
            try stderrPipe.read.setNonBlocking()
            try exchange(stdin: stdinPipe.write, input: input, stdout: stdoutPipe.read, stderr: stderrPipe.read,
                         output: &output, errorOutput: &errorOutput, deadline: deadline, maxOutputBytes: maxOutputBytes)
        } catch {
            kill(pid, SIGKILL)
            _ = reap(pid)
            throw error
        }
        return Outcome(status: reap(pid), output: output, errorOutput: errorOutput)
    }

    private static func exchange(stdin: FileDescriptor, input: [UInt8], stdout: FileDescriptor, stderr: FileDescriptor,
                                 output: inout [UInt8], errorOutput: inout [UInt8],
                                 deadline: UInt64, maxOutputBytes: Int) throws(SystemError) {
        var written = 0
        if input.isEmpty { stdin.close() }
        var chunk = [UInt8](repeating: 0, count: 16384)
        while stdout.isOpen || stderr.isOpen {
            let now = MonotonicClock.nanoseconds()
            guard now < deadline else { throw SystemError("waiting for the child process", errno: ETIMEDOUT) }
            var entries: [pollfd] = []
            if stdin.isOpen { entries.append(pollfd(fd: stdin.rawValue, events: Int16(POLLOUT), revents: 0)) }
            if stdout.isOpen { entries.append(pollfd(fd: stdout.rawValue, events: Int16(POLLIN), revents: 0)) }
            if stderr.isOpen { entries.append(pollfd(fd: stderr.rawValue, events: Int16(POLLIN), revents: 0)) }
            let milliseconds = Int32(min(UInt64(Int32.max), (deadline - now + 999_999) / 1_000_000))
            let ready = poll(&entries, nfds_t(entries.count), milliseconds)
            if ready < 0 {
                let code = vhost_shims_errno()
                if code == EINTR { continue }
                throw SystemError("poll", errno: code)
            }
            for entry in entries where entry.revents != 0 {
                if entry.fd == stdin.rawValue {
                    let n = input.withUnsafeBytes { Glibc.write(stdin.rawValue, $0.baseAddress! + written, $0.count - written) }
                    if n > 0 { written += n }
                    let code = n < 0 ? vhost_shims_errno() : 0
                    if written >= input.count || (n < 0 && code != EAGAIN && code != EINTR) { stdin.close() }
                    continue
                }
                let isOutput = entry.fd == stdout.rawValue
                let n = chunk.withUnsafeMutableBytes { Glibc.read(entry.fd, $0.baseAddress, $0.count) }
                if n > 0 {
                    if isOutput { output.append(contentsOf: chunk[0..<n]) } else { errorOutput.append(contentsOf: chunk[0..<n]) }
                    if output.count + errorOutput.count > maxOutputBytes {
                        throw SystemError("child output larger than \(maxOutputBytes) bytes", errno: EFBIG)
                    }
                } else if n == 0 || (vhost_shims_errno() != EAGAIN && vhost_shims_errno() != EINTR) {
                    if isOutput { stdout.close() } else { stderr.close() }
                }
            }
        }
        stdin.close()
    }

    private static func reap(_ pid: pid_t) -> Int32 {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 {
            if vhost_shims_errno() != EINTR { return -1 }
        }
        let signal = status & 0x7F
        return signal == 0 ? (status >> 8) & 0xFF : 128 + signal
    }

    private static func makePipe() throws(SystemError) -> (read: FileDescriptor, write: FileDescriptor) {
        var fds: [Int32] = [-1, -1]
        // pipe2 is a GNU extension Swift does not see: pipe, then close-on-exec on each end.
        try systemCall("pipe") { pipe(&fds) }
        let ends = (read: FileDescriptor(adopting: fds[0]), write: FileDescriptor(adopting: fds[1]))
        try systemCall("fcntl(FD_CLOEXEC)") { fcntl(fds[0], F_SETFD, FD_CLOEXEC) }
        try systemCall("fcntl(FD_CLOEXEC)") { fcntl(fds[1], F_SETFD, FD_CLOEXEC) }
        return ends
    }
}

extension FileSystem {
    /// True when `path` is a regular file this process may execute.
    public static func isExecutableFile(_ path: String) -> Bool {
        guard kind(at: path) == .regular || kind(at: path) == .symlink else { return false }
        return access(path, X_OK) == 0
    }

    /// rmdir: removes `path` only when it is an empty directory. Returns whether it did.
    @discardableResult
    public static func removeEmptyDirectory(_ path: String) -> Bool {
        rmdir(path) == 0
    }

    /// The names in a directory (without "." and ".."), or nil when it cannot be opened.
    public static func directoryEntries(_ path: String) -> [String]? {
        guard let directory = opendir(path) else { return nil }
        defer { closedir(directory) }
        var names: [String] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }
}
