import CVhostShims
import Glibc

/// An mmap'd range, unmapped exactly once when the last reference goes.
public final class MemoryMapping: @unchecked Sendable {
    public let base: UnsafeMutableRawPointer
    public let length: Int
    /// The guard registry slot (`GuestMemoryGuard`), or -1 when unguarded.
    private let guardSlot: Int32
    /// Kept alive while the slot points at its word.
    private let faultFlag: GuestFaultFlag?

    /// Maps `length` bytes of `descriptor` at `offset`, shared and read-write.
    /// The caller checks beforehand that the file is long enough. With `guarding`, a SIGBUS
    /// inside the mapping later (the file shrank under us) raises that flag's memory fault
    /// instead of killing the process (`GuestMemoryGuard`); without, it kills as usual.
    public init(descriptor: FileDescriptor, length: Int, offset: UInt64 = 0,
                protection: Int32 = PROT_READ | PROT_WRITE, flags: Int32 = MAP_SHARED,
                guarding faultFlag: GuestFaultFlag? = nil) throws(SystemError) {
        guard length > 0, offset <= UInt64(Int64.max) else { throw SystemError("mmap", errno: EINVAL) }
        let address = mmap(nil, length, protection, flags, descriptor.rawValue, off_t(offset))
        guard let address, address != MAP_FAILED else {
            throw SystemError("mmap", errno: vhost_shims_errno())
        }
        if let faultFlag {
            if let error = GuestMemoryGuard.install() {
                munmap(address, length)
                throw error
            }
            let slot = vhost_shims_guard_register(address, length, faultFlag.word, faultFlag.notifyDescriptor)
            guard slot >= 0 else {
                munmap(address, length)
                throw SystemError("guard guest mapping (all \(GuestMemoryGuard.slotLimit) slots of the process in use)", errno: ENOSPC)
            }
            guardSlot = slot
        } else {
            guardSlot = -1
        }
        self.faultFlag = faultFlag
        base = address
        self.length = length
    }

    /// Anonymous private memory (packet buffer pools), optionally locked later.
    public init(anonymousLength length: Int) throws(SystemError) {
        guard length > 0 else { throw SystemError("mmap", errno: EINVAL) }
        let address = mmap(nil, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
        guard let address, address != MAP_FAILED else {
            throw SystemError("mmap", errno: vhost_shims_errno())
        }
        base = address
        self.length = length
        guardSlot = -1
        faultFlag = nil
    }

    /// Whether a SIGBUS inside the mapping is contained (it holds a guard registry slot).
    public var isGuarded: Bool { guardSlot >= 0 }

    deinit {
        // Released first: the address range may be reused by the next mapping.
        if guardSlot >= 0 { vhost_shims_guard_unregister(guardSlot) }
        munmap(base, length)
    }

    public var bytes: UnsafeMutableRawBufferPointer { UnsafeMutableRawBufferPointer(start: base, count: length) }
}

/// Anonymous shared memory with an fd (memfd): fake guest memory in tests, dirty logs.
public enum MemFD {
    /// `flags` are added to MFD_CLOEXEC (tests and the hostile front-end: MFD_ALLOW_SEALING,
    /// MFD_HUGETLB).
    public static func create(name: String, size: Int, flags: UInt32 = 0) throws(SystemError) -> FileDescriptor {
        let raw = try systemCall("memfd_create") { vhost_shims_memfd_create(name, VHOST_SHIMS_MFD_CLOEXEC | flags) }
        let fd = FileDescriptor(adopting: raw)
        try systemCall("ftruncate") { ftruncate(fd.rawValue, off_t(size)) }
        return fd
    }
}
