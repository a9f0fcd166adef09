import CVhostShims
import Glibc

/// A named OS thread with optional CPU affinity: poll threads and the control loop.
public final class SystemThread: @unchecked Sendable {
    private var thread: pthread_t
    public let name: String

    private final class Start {
        let body: () -> Void
        let name: String
        init(_ name: String, _ body: @escaping () -> Void) { self.name = name; self.body = body }
    }

    /// How often the calling thread was preempted (involuntary context switches), for
    /// timings that must not count time the thread did not run; -1 when unknown.
    public static func preemptionCount() -> Int { vhost_shims_thread_involuntary_switches() }

    /// CPU time the calling thread has run, in nanoseconds. With paravirtual steal-time
    /// accounting this leaves out time the hypervisor ran something else.
    public static func cpuTimeNanoseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
        return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
    }

    /// Starts `body` on a new thread pinned to `cpus` when given.
    public init(name: String, cpus: [Int] = [], body: @escaping () -> Void) throws(SystemError) {
        self.name = name
        let start = Unmanaged.passRetained(Start(name, body)).toOpaque()
        var handle = pthread_t()
        let rc = pthread_create(&handle, nil, { context in
            let start = Unmanaged<Start>.fromOpaque(context!).takeRetainedValue()
            _ = vhost_shims_set_thread_name(start.name)
            start.body()
            return nil
        }, start)
        guard rc == 0 else {
            Unmanaged<Start>.fromOpaque(start).release()
            throw SystemError("pthread_create", errno: rc)
        }
        thread = handle
        if !cpus.isEmpty {
            let cpuNumbers = cpus.map { Int32($0) }
            let result = cpuNumbers.withUnsafeBufferPointer { vhost_shims_set_thread_affinity(handle, $0.baseAddress, Int32($0.count)) }
            if result != 0 { throw SystemError("pthread_setaffinity_np(\(cpus))", errno: result) }
        }
    }

    public func join() {
        pthread_join(thread, nil)
    }

    /// Pins the calling thread, for threads created elsewhere.
    public static func pinCurrent(to cpus: [Int]) throws(SystemError) {
        let cpuNumbers = cpus.map { Int32($0) }
        let result = cpuNumbers.withUnsafeBufferPointer { vhost_shims_set_thread_affinity(pthread_self(), $0.baseAddress, Int32($0.count)) }
        if result != 0 { throw SystemError("pthread_setaffinity_np(\(cpus))", errno: result) }
    }

    public static func sleep(milliseconds: Int) {
        usleep(UInt32(milliseconds * 1000))
    }
}
