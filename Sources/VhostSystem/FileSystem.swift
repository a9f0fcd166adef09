import CVhostShims
import Glibc

/// The file operations the switch needs: socket directories, ownership, state files.
public enum FileSystem {
    public enum Kind: Sendable { case directory, symlink, socket, regular, other }

    /// What is at `path` without following a final symlink; nil when nothing is.
    public static func kind(at path: String) -> Kind? {
        var info = stat()
        guard lstat(path, &info) == 0 else { return nil }
        switch info.st_mode & S_IFMT {
        case S_IFDIR: return .directory
        case S_IFLNK: return .symlink
        case S_IFSOCK: return .socket
        case S_IFREG: return .regular
        default: return .other
        }
    }

    /// mkdir; an existing entry is not an error (the caller checks its kind).
    public static func makeDirectory(_ path: String, permissions: mode_t = 0o755) throws(SystemError) {
        if mkdir(path, permissions) != 0 {
            let code = vhost_shims_errno()
            if code != EEXIST { throw SystemError("mkdir(\(path))", errno: code) }
        }
    }

    /// mkdir -p.
    public static func makeDirectoryTree(_ path: String, permissions: mode_t = 0o755) throws(SystemError) {
        var current = path.hasPrefix("/") ? "" : "."
        for component in path.split(separator: "/") {
            current += "/" + component
            try makeDirectory(current, permissions: permissions)
        }
    }

    public static func remove(_ path: String) {
        _ = unlink(path)
    }

    public static func setPermissions(_ path: String, _ permissions: UInt32) throws(SystemError) {
        try systemCall("chmod(\(path))") { chmod(path, mode_t(permissions)) }
    }

    /// chown by user and group names (or numeric ids); nil leaves that one unchanged.
    public static func changeOwner(_ path: String, user: String?, group: String?) throws(SystemError) {
        var uid = uid_t.max  // -1: unchanged
        var gid = gid_t.max
        if let user {
            if let numeric = uid_t(user) { uid = numeric } else if let entry = getpwnam(user) { uid = entry.pointee.pw_uid } else {
                throw SystemError("unknown user \(user)", errno: EINVAL)
            }
        }
        if let group {
            if let numeric = gid_t(group) { gid = numeric } else if let entry = getgrnam(group) { gid = entry.pointee.gr_gid } else {
                throw SystemError("unknown group \(group)", errno: EINVAL)
            }
        }
        try systemCall("chown(\(path))") { lchown(path, uid, gid) }
    }

    /// The whole file, or nil when it does not exist. Other errors throw.
    public static func readFile(_ path: String, maxBytes: Int = 16 << 20) throws(SystemError) -> [UInt8]? {
        let raw = open(path, O_RDONLY | O_CLOEXEC)
        if raw < 0 {
            let code = vhost_shims_errno()
            if code == ENOENT { return nil }
            throw SystemError("open(\(path))", errno: code)
        }
        let fd = FileDescriptor(adopting: raw)
        var result: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = try chunk.withUnsafeMutableBytes { buffer in
                Result { () throws(SystemError) -> Int in try fd.read(into: buffer) }
            }.get()
            if n == 0 { break }
            result.append(contentsOf: chunk[0..<n])
            if result.count > maxBytes { throw SystemError("read(\(path)): larger than \(maxBytes) bytes", errno: EFBIG) }
        }
        return result
    }

    /// Writes `bytes` to a temporary file beside `path`, fsyncs it and renames it over
    /// `path`: readers see the old or the new file, never half of one.
    public static func writeFileAtomically(_ path: String, _ bytes: [UInt8], permissions: mode_t = 0o600) throws(SystemError) {
        let temporary = path + ".tmp"
        let fd = FileDescriptor(adopting: try systemCall("open(\(temporary))") { open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, permissions) })
        try fd.writeAll(bytes)
        try systemCall("fsync(\(temporary))") { fsync(fd.rawValue) }
        fd.close()
        try systemCall("rename(\(temporary))") { Glibc.rename(temporary, path) }
    }

    public static func rename(from source: String, to destination: String) throws(SystemError) {
        try systemCall("rename(\(source))") { Glibc.rename(source, destination) }
    }
}
