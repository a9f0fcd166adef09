import CVhostShims
import Glibc

/// An owned file descriptor, closed exactly once: by `close()` or when the last reference goes.
public final class FileDescriptor: @unchecked Sendable {
    // Only the owner mutates `raw` (close); readers on other threads see a stable value until then.
    public private(set) var rawValue: Int32

    public init(adopting raw: Int32) {
        precondition(raw >= 0, "adopting an invalid file descriptor")
        rawValue = raw
    }

    deinit { close() }

    public var isOpen: Bool { rawValue >= 0 }

    /// Closes now. Later calls do nothing. EINTR is not retried: on Linux the fd is gone anyway.
    public func close() {
        guard rawValue >= 0 else { return }
        _ = Glibc.close(rawValue)
        rawValue = -1
    }

    /// Gives up ownership without closing, for handing the fd to code that closes it itself.
    public func release() -> Int32 {
        let raw = rawValue
        rawValue = -1
        return raw
    }

    public func setNonBlocking(_ enabled: Bool = true) throws(SystemError) {
        let flags = try systemCall("fcntl(F_GETFL)") { fcntl(rawValue, F_GETFL) }
        let updated = enabled ? flags | O_NONBLOCK : flags & ~O_NONBLOCK
        try systemCall("fcntl(F_SETFL)") { fcntl(rawValue, F_SETFL, updated) }
    }

    /// The size of the file behind the descriptor (fstat), to check a mapping fits before
    /// touching it: touching past the end of a file raises SIGBUS.
    public func fileSize() throws(SystemError) -> UInt64 {
        var info = stat()
        try systemCall("fstat") { fstat(rawValue, &info) }
        return UInt64(max(0, info.st_size))
    }

    /// True when the descriptor refers to a regular file or memfd (something mmap-able).
    public func isMappableFile() throws(SystemError) -> Bool {
        var info = stat()
        try systemCall("fstat") { fstat(rawValue, &info) }
        let kind = info.st_mode & S_IFMT
        return kind == S_IFREG
    }

    public func write(_ bytes: UnsafeRawBufferPointer) throws(SystemError) -> Int {
        try systemCall("write") { Glibc.write(rawValue, bytes.baseAddress, bytes.count) }
    }

    /// Opens (creating) `path` for appending, close-on-exec.
    public static func openForAppending(_ path: String, permissions: mode_t) throws(SystemError) -> FileDescriptor {
        FileDescriptor(adopting: try systemCall("open(\(path))") { open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, permissions) })
    }

    /// Writes every byte (a short write continues where it stopped).
    public func writeAll(_ bytes: [UInt8]) throws(SystemError) {
        var written = 0
        while written < bytes.count {
            written += try bytes.withUnsafeBytes { buffer in
                Result { () throws(SystemError) -> Int in try write(UnsafeRawBufferPointer(rebasing: buffer[written...])) }
            }.get()
        }
    }

    /// fdatasync: the file's data (and the size it needs) is on stable storage.
    public func synchronizeData() throws(SystemError) {
        try systemCall("fdatasync") { fdatasync(rawValue) }
    }

    /// ftruncate to `length` bytes.
    public func truncate(to length: Int) throws(SystemError) {
        try systemCall("ftruncate") { ftruncate(rawValue, off_t(length)) }
    }

    /// fallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE): frees `length` bytes at `offset`
    /// (they read as zeros again on tmpfs; on hugetlbfs the pages go back to the pool), the size
    /// unchanged, which F_SEAL_SHRINK allows. fallocate is a GNU function Swift's Glibc does not
    /// import: looked up at run time.
    public func punchHole(offset: Int, length: Int) throws(SystemError) {
        typealias Fallocate = @convention(c) (Int32, Int32, Int, Int) -> Int32
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "fallocate") else { throw SystemError("fallocate", errno: ENOSYS) }
        let punchHoleKeepSize: Int32 = 0x02 | 0x01
        // Unsafe: the symbol is glibc's fallocate, whose C signature the typealias spells.
        let fallocate = unsafeBitCast(symbol, to: Fallocate.self)
        try systemCall("fallocate") { fallocate(rawValue, punchHoleKeepSize, offset, length) }
    }

    public func read(into buffer: UnsafeMutableRawBufferPointer) throws(SystemError) -> Int {
        try systemCall("read") { Glibc.read(rawValue, buffer.baseAddress, buffer.count) }
    }

    public static func duplicate(_ raw: Int32) throws(SystemError) -> FileDescriptor {
        FileDescriptor(adopting: try systemCall("fcntl(F_DUPFD_CLOEXEC)") { fcntl(raw, F_DUPFD_CLOEXEC, 0) })
    }

    /// The number of open fds of this process, for leak checks in tests and the hostile front-end.
    public static func openCount() -> Int {
        guard let dir = opendir("/proc/self/fd") else { return -1 }
        defer { closedir(dir) }
        var count = 0
        while readdir(dir) != nil { count += 1 }
        return count - 3  // ".", ".." and the directory's own fd
    }
}
