/// Why a guest memory table (SET_MEM_TABLE, ADD_MEM_REG) or dirty log was refused.
public enum GuestMemoryError: Error, Equatable, CustomStringConvertible {
    case zeroSize
    /// guest_phys_addr + size, userspace_addr + size or mmap_offset + size wraps 2^64.
    case addressOverflow
    /// Two regions share guest-physical or front-end virtual addresses.
    case overlappingRegions
    case tooManyRegions
    /// The file ends before mmap_offset + size: touching the rest would raise SIGBUS.
    case fileTooShort(needed: UInt64, actual: UInt64)
    /// The fd is not a regular file or memfd (a socket, pipe, ...).
    case notMappable
    case mapFailed(errno: Int32)
    /// Every slot of the process's SIGBUS guard registry is taken (`GuestMemoryGuard.slotLimit`).
    case guardRegistryFull(limit: Int)
    /// The dirty log's offset + size does not lie inside its mapping.
    case logOutsideMapping
    /// The region's mapping (rounded to the file's blocks) is longer than what is left of
    /// the session's cap on mapped memory; refused before mmap.
    case overMappingBudget(length: UInt64, budget: UInt64)

    public var description: String {
        switch self {
        case .zeroSize: "memory region of size 0"
        case .addressOverflow: "memory region address + size overflows"
        case .overlappingRegions: "memory regions overlap"
        case .tooManyRegions: "too many memory regions"
        case .fileTooShort(let needed, let actual): "memory file has \(actual) bytes, region needs \(needed)"
        case .notMappable: "memory fd is not a mappable file"
        case .mapFailed(let errno): "mmap of memory region failed (errno \(errno))"
        case .guardRegistryFull(let limit): "all \(limit) guarded guest mappings of the process in use"
        case .logOutsideMapping: "dirty log range lies outside its mapping"
        case .overMappingBudget(let length, let budget): "memory region needs \(length) bytes mapped, \(budget) left of the cap per session"
        }
    }
}
