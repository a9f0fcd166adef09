import PortService
import Synchronization
import VhostSystem

/// systemd's watchdog (WatchdogSec=, $WATCHDOG_USEC): a ping every half interval, sent only
/// while readiness holds, i.e. while the control loop and every poll thread make progress
/// (`ReadinessMonitor`, the same judgement as /v1/ready). A daemon whose threads are stuck
/// stops pinging, and systemd restarts it one interval later (at most --readiness-stall-seconds
/// plus WatchdogSec after the stall began).
public final class ServiceWatchdog: Sendable {
    private let monitor: ReadinessMonitor
    private let progress: @Sendable () -> [ProgressCounter]
    private let ping: @Sendable () -> Void
    private let periodNanoseconds: UInt64
    private let stopped = Atomic<Bool>(false)
    private let thread = Mutex<SystemThread?>(nil)

    /// `watchdogMicroseconds` is $WATCHDOG_USEC; pings go out every half of it.
    public init(watchdogMicroseconds: UInt64, monitor: ReadinessMonitor,
                progress: @escaping @Sendable () -> [ProgressCounter], ping: @escaping @Sendable () -> Void) {
        self.monitor = monitor
        self.progress = progress
        self.ping = ping
        periodNanoseconds = max(1, watchdogMicroseconds / 2) &* 1000
    }

    /// One look at the progress counters: pings and returns true when none has stalled.
    @discardableResult
    public func tick() -> Bool {
        let healthy = !monitor.check(progress()).contains(where: \.stalled)
        if healthy { ping() }
        return healthy
    }

    /// Ticks on its own thread, once per half interval, until `stop`.
    public func start() throws(SystemError) {
        let started = try SystemThread(name: "watchdog") { [self] in
            while !stopped.load(ordering: .acquiring) {
                tick()
                sleep(nanoseconds: periodNanoseconds)
            }
        }
        thread.withLock { $0 = started }
    }

    public func stop() {
        stopped.store(true, ordering: .releasing)
        thread.withLock { $0.take() }?.join()
    }

    /// Sleeps in slices of at most 100 ms, so `stop` does not wait a whole period.
    private func sleep(nanoseconds: UInt64) {
        let deadline = MonotonicClock.nanoseconds() &+ nanoseconds
        while !stopped.load(ordering: .acquiring) {
            let now = MonotonicClock.nanoseconds()
            guard now < deadline else { return }
            SystemThread.sleep(milliseconds: Int(min(deadline - now, 100_000_000) / 1_000_000) + 1)
        }
    }
}
