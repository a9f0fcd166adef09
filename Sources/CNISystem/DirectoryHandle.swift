import CVhostShims
import Glibc
import VhostSystem

/// An open directory, and the *at() calls relative to it with no symlink followed: what the
/// CNI plugin needs to create, recognise and remove its own files in directories that pods
/// can write to (a pod that swaps a directory for a symlink cannot redirect an unlink).
public struct DirectoryHandle {
    public let descriptor: FileDescriptor
    /// For messages only: how the directory was reached.
    public let path: String

    public enum EntryKind: Equatable, Sendable { case directory, symlink, socket, regular, other }

    /// What lstat says about one entry.
    public struct Entry: Equatable, Sendable {
        public var kind: EntryKind
        public var ownerID: UInt32
        public var mode: UInt32
    }

    /// Opens an absolute directory path. `followLinks` false refuses a symlink in the last
    /// component only; earlier components are the caller's trusted, install-time prefix.
    public static func open(_ path: String, followLinks: Bool = false) throws(SystemError) -> DirectoryHandle {
        let flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC | (followLinks ? 0 : O_NOFOLLOW)
        let raw = try systemCall("open(\(path))") { Glibc.open(path, flags) }
        return DirectoryHandle(descriptor: FileDescriptor(adopting: raw), path: path)
    }

    /// mkdirat: true when this call created `name`, false when something was already there
    /// (the caller opens it with `child`, which refuses anything but a real directory).
    @discardableResult
    public func makeDirectory(_ name: String, permissions: mode_t = 0o755) throws(SystemError) -> Bool {
        try Self.checkComponent(name)
        if mkdirat(descriptor.rawValue, name, permissions) == 0 { return true }
        let code = vhost_shims_errno()
        if code == EEXIST { return false }
        throw SystemError("mkdir(\(path)/\(name))", errno: code)
    }

    /// The child directory `name` (one component). A symlink is refused (ELOOP or ENOTDIR),
    /// never followed.
    public func child(_ name: String) throws(SystemError) -> DirectoryHandle {
        try Self.checkComponent(name)
        let raw = try systemCall("open(\(path)/\(name))") { openat(descriptor.rawValue, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) }
        return DirectoryHandle(descriptor: FileDescriptor(adopting: raw), path: path + "/" + name)
    }

    /// fstat of the directory itself.
    public func status() throws(SystemError) -> Entry {
        var info = stat()
        try systemCall("fstat(\(path))") { fstat(descriptor.rawValue, &info) }
        return Self.entry(info)
    }

    /// lstat of `name` in this directory; nil when there is no such entry.
    public func entry(_ name: String) throws(SystemError) -> Entry? {
        try Self.checkComponent(name)
        var info = stat()
        if fstatat(descriptor.rawValue, name, &info, AT_SYMLINK_NOFOLLOW) != 0 {
            let code = vhost_shims_errno()
            if code == ENOENT { return nil }
            throw SystemError("lstat(\(path)/\(name))", errno: code)
        }
        return Self.entry(info)
    }

    /// Creates the regular file `name` with `bytes`; fails with EEXIST when anything is there.
    public func createFile(_ name: String, _ bytes: [UInt8], permissions: mode_t = 0o600) throws(SystemError) {
        try Self.checkComponent(name)
        let raw = try systemCall("create(\(path)/\(name))") {
            openat(descriptor.rawValue, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, permissions)
        }
        let file = FileDescriptor(adopting: raw)
        try Self.writeAll(file, bytes, what: path + "/" + name)
        try systemCall("fsync(\(path)/\(name))") { fsync(file.rawValue) }
    }

    /// Replaces `name` with `bytes` atomically: a fresh temporary file, then renameat over it.
    /// The temporary name is `.<name>.tmp`; a leftover one (an earlier crash) is removed first.
    public func replaceFile(_ name: String, _ bytes: [UInt8], permissions: mode_t = 0o644) throws(SystemError) {
        let temporary = "." + name + ".tmp"
        if let leftover = try entry(temporary), leftover.kind != .directory { try remove(temporary) }
        try createFile(temporary, bytes, permissions: permissions)
        try systemCall("rename(\(path)/\(temporary))") { renameat(descriptor.rawValue, temporary, descriptor.rawValue, name) }
    }

    /// The contents of the regular file `name` (no symlink followed), at most `maxBytes`.
    public func readFile(_ name: String, maxBytes: Int) throws(SystemError) -> [UInt8] {
        try Self.checkComponent(name)
        let raw = try systemCall("open(\(path)/\(name))") { openat(descriptor.rawValue, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC) }
        let file = FileDescriptor(adopting: raw)
        guard try file.isMappableFile() else { throw .invalidArgument("\(path)/\(name) is not a regular file") }
        var result: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            // Unsafe: read(2) fills the array's own buffer, bounded by its count.
            let n = try chunk.withUnsafeMutableBytes { buffer in Result { () throws(SystemError) -> Int in try file.read(into: buffer) } }.get()
            if n == 0 { return result }
            result.append(contentsOf: chunk[0..<n])
            if result.count > maxBytes { throw SystemError("read(\(path)/\(name)): larger than \(maxBytes) bytes", errno: EFBIG) }
        }
    }

    /// unlinkat: removes the entry itself (a symlink, not its target).
    public func remove(_ name: String) throws(SystemError) {
        try Self.checkComponent(name)
        try systemCall("unlink(\(path)/\(name))") { unlinkat(descriptor.rawValue, name, 0) }
    }

    /// Removes the empty directory `name`.
    public func removeDirectory(_ name: String) throws(SystemError) {
        try Self.checkComponent(name)
        try systemCall("rmdir(\(path)/\(name))") { unlinkat(descriptor.rawValue, name, AT_REMOVEDIR) }
    }

    /// The names in the directory, without "." and "..".
    public func names() throws(SystemError) -> [String] {
        let copy = try systemCall("dup(\(path))") { fcntl(descriptor.rawValue, F_DUPFD_CLOEXEC, 0) }
        // Unsafe: readdir hands out C structs; the DIR owns (and closedir closes) the copy.
        guard let stream = fdopendir(copy) else {
            let code = vhost_shims_errno()
            Glibc.close(copy)
            throw SystemError("fdopendir(\(path))", errno: code)
        }
        defer { closedir(stream) }
        rewinddir(stream)
        var result: [String] = []
        while let item = readdir(stream) {
            // Unsafe: d_name is a NUL-terminated array inside the dirent readdir returned.
            let name = withUnsafePointer(to: item.pointee.d_name) { $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) } }
            if name != "." && name != ".." { result.append(name) }
        }
        return result
    }

    /// One path component: not empty, ".", ".." and without '/' or NUL.
    static func checkComponent(_ name: String) throws(SystemError) {
        if name.isEmpty || name == "." || name == ".." || name.utf8.contains(UInt8(ascii: "/")) || name.utf8.contains(0) {
            throw .invalidArgument("\"\(name)\" is not a single path component")
        }
    }

    private static func entry(_ info: stat) -> Entry {
        let kind: EntryKind
        switch info.st_mode & S_IFMT {
        case S_IFDIR: kind = .directory
        case S_IFLNK: kind = .symlink
        case S_IFSOCK: kind = .socket
        case S_IFREG: kind = .regular
        default: kind = .other
        }
        return Entry(kind: kind, ownerID: info.st_uid, mode: info.st_mode & 0o7777)
    }

    private static func writeAll(_ file: FileDescriptor, _ bytes: [UInt8], what: String) throws(SystemError) {
        var written = 0
        while written < bytes.count {
            // Unsafe: write(2) reads the rest of the array's own buffer.
            written += try bytes.withUnsafeBytes { buffer in
                Result { () throws(SystemError) -> Int in try file.write(UnsafeRawBufferPointer(rebasing: buffer[written...])) }
            }.get()
        }
    }
}
