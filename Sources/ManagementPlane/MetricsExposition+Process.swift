import VhostSystem

/// The standard process metrics (the names every Prometheus client library uses), so the
/// usual dashboards and alerts work unchanged.
extension MetricsExposition {
    static func addProcessMetrics(startedAt: UInt64, to metrics: Builder) {
        let process = ProcessStatistics.current()
        metrics.add("process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.", [],
                    value: String(process.cpuSeconds))
        metrics.add("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.", [], process.residentBytes)
        metrics.add("process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.", [], process.virtualBytes)
        metrics.add("process_open_fds", "gauge", "Number of open file descriptors.", [], UInt64(process.openFileDescriptors))
        metrics.add("process_max_fds", "gauge", "Maximum number of open file descriptors.", [], process.maxFileDescriptors)
        // Wall-clock start: now minus the monotonic time since the management plane started.
        let sinceStart = Double(MonotonicClock.nanoseconds() &- startedAt) / 1e9
        let start = Double(MonotonicClock.wallMilliseconds()) / 1000 - sinceStart
        metrics.add("process_start_time_seconds", "gauge", "Start time of the process since unix epoch in seconds.", [],
                    value: String(format3(start)))
    }

    private static func format3(_ value: Double) -> String {
        String(Double((value * 1000).rounded()) / 1000)
    }
}
