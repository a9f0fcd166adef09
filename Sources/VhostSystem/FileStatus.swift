import CVhostShims
import Glibc

/// What `fstat` says about a descriptor, in one call: guest memory mapping needs the size
/// (touching past the end raises SIGBUS), the kind (only files and memfds can be mapped)
/// and the block size (hugetlbfs mappings must be unmapped with a hugepage-aligned length).
public struct FileStatus: Equatable, Sendable {
    public var size: UInt64
    public var blockSize: UInt64
    public var isRegularFile: Bool

    public init(size: UInt64, blockSize: UInt64, isRegularFile: Bool) {
        self.size = size
        self.blockSize = blockSize
        self.isRegularFile = isRegularFile
    }
}

extension FileDescriptor {
    public func status() throws(SystemError) -> FileStatus {
        var info = stat()
        try systemCall("fstat") { fstat(rawValue, &info) }
        return FileStatus(size: UInt64(max(0, info.st_size)),
                          blockSize: UInt64(max(0, info.st_blksize)),
                          isRegularFile: info.st_mode & S_IFMT == S_IFREG)
    }
}

extension FileDescriptor {
    /// True when the file is a memfd sealed against shrinking (F_SEAL_SHRINK): its pages can
    /// never disappear under a mapping. Hugetlbfs files and plain files cannot be sealed.
    public var isSealedAgainstShrinking: Bool {
        let seals = vhost_shims_file_seals(rawValue)
        return seals >= 0 && seals & vhost_shims_seal_shrink_bit() != 0
    }
}
