import Glibc

/// The process's own resource use, for the standard Prometheus `process_*` metrics: read
/// when /metrics is asked for, never on a hot path.
public struct ProcessStatistics: Sendable {
    /// User plus system CPU time of every thread.
    public var cpuSeconds: Double
    public var residentBytes: UInt64
    public var virtualBytes: UInt64
    public var openFileDescriptors: Int
    /// The soft RLIMIT_NOFILE.
    public var maxFileDescriptors: UInt64

    public static func current() -> ProcessStatistics {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        let cpu = Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6
            + Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) / 1e6
        // /proc/self/statm: sizes in pages, "size resident shared text lib data dt".
        let statm = (try? FileSystem.readFile("/proc/self/statm", maxBytes: 256)).flatMap { $0 } ?? []
        let fields = String(decoding: statm, as: UTF8.self).split(separator: " ").compactMap { UInt64($0) }
        let page = UInt64(max(getpagesize(), 1))
        var limit = rlimit()
        getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit)
        return ProcessStatistics(cpuSeconds: cpu,
                                 residentBytes: fields.count > 1 ? fields[1] &* page : 0,
                                 virtualBytes: fields.first.map { $0 &* page } ?? 0,
                                 openFileDescriptors: max(FileDescriptor.openCount(), 0),
                                 maxFileDescriptors: UInt64(limit.rlim_cur))
    }
}
