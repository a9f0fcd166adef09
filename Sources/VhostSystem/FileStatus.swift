import CVhostShims
import Glibc

/// What `fstat` says about a descriptor, in one call: guest memory mapping needs the size
/// (touching past the end raises SIGBUS), the kind (only files and memfds can be mapped)
/// and the block size (hugetlbfs mappings must be unmapped with a hugepage-aligned length);
/// a secret's reader needs the permission bits and the owner.
public struct FileStatus: Equatable, Sendable {
    public var size: UInt64
    public var blockSize: UInt64
    public var isRegularFile: Bool
    /// The permission bits (mode & 0o7777).
    public var permissions: UInt32
    public var ownerID: UInt32

    public init(size: UInt64, blockSize: UInt64, isRegularFile: Bool, permissions: UInt32 = 0, ownerID: UInt32 = 0) {
        self.size = size
        self.blockSize = blockSize
        self.isRegularFile = isRegularFile
        self.permissions = permissions
        self.ownerID = ownerID
    }
}

extension FileDescriptor {
    public func status() throws(SystemError) -> FileStatus {
        var info = stat()
        try systemCall("fstat") { fstat(rawValue, &info) }
        return FileStatus(size: UInt64(max(0, info.st_size)),
                          blockSize: UInt64(max(0, info.st_blksize)),
                          isRegularFile: info.st_mode & S_IFMT == S_IFREG,
                          permissions: UInt32(info.st_mode & 0o7777), ownerID: UInt32(info.st_uid))
    }
}
