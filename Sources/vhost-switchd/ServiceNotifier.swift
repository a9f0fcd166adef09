import Logging
import ManagementPlane
import PortService
import Synchronization
import VhostSystem

/// What the service manager (systemd, Type=notify; deploy/systemd/vhost-switchd.service) is
/// told, and when. Without $NOTIFY_SOCKET (a shell, Kubernetes) every call does nothing.
///
/// - `ready`: READY=1 once the daemon serves (its saved ports restored, or taken over, and its
///   API answering), then WATCHDOG=1 every half $WATCHDOG_USEC while the threads make progress
///   (`ServiceWatchdog`).
/// - A hand-over under `systemctl reload` (ExecReload starts `vhost-switchd --takeover`; with
///   NotifyAccess=all systemd hears from it although it is not the main process): systemd must
///   know the new main PID before the old main process exits, or that exit ends the service and
///   systemd kills the new process with it. Both sides say so, each waiting until systemd has
///   taken it in (sd_notify_barrier): the running daemon at the commit, just before it exits 0
///   (`handOverMainProcess(to:)`; only a committed hand-over moves the main PID, so a takeover
///   that fails or is killed before its commit leaves systemd with the daemon that keeps
///   serving), and the new process in `ready(afterTakeover: true)` (MAINPID=<its pid>, then
///   READY=1).
/// - `stopping`: STOPPING=1 when shutdown begins.
final class ServiceNotifier: Sendable {
    private let socket: ServiceManagerSocket?
    private let logger: Logger
    private let watchdog = Mutex<ServiceWatchdog?>(nil)

    init(logger: Logger) {
        self.logger = logger
        do {
            socket = try ServiceManagerSocket.fromEnvironment()
        } catch {
            logger.warning("NOTIFY_SOCKET: \(error.description); systemd will not hear from this daemon")
            socket = nil
        }
    }

    /// READY=1 (after MAINPID= when this process took over from a running daemon), then the
    /// watchdog, when systemd asked for one, fed by `progress` as judged by `readiness`.
    func ready(afterTakeover: Bool = false, readiness: ReadinessMonitor, progress: @escaping @Sendable () -> [ProgressCounter]) {
        guard let socket else { return }
        if afterTakeover { announceMainProcess(ServiceManagerSocket.processID) }
        send("READY=1")
        guard let microseconds = ServiceManagerSocket.watchdogMicrosecondsFromEnvironment() else { return }
        let started = ServiceWatchdog(watchdogMicroseconds: microseconds, monitor: readiness, progress: progress) { [socket] in
            try? socket.send("WATCHDOG=1")
        }
        do {
            try started.start()
            watchdog.withLock { $0 = started }
            logger.info("systemd watchdog: pinging every \(microseconds / 2000) ms while the control loop and poll threads make progress")
        } catch {
            logger.error("systemd watchdog thread: \(error.description)")
        }
    }

    /// The running daemon at a hand-over's commit, before it exits 0: the process `pid` is
    /// the service's main process from now on.
    func handOverMainProcess(to pid: Int32) {
        announceMainProcess(pid)
    }

    /// STOPPING=1; the watchdog stops with it (systemd's stop timeout takes over).
    func stopping() {
        watchdog.withLock { $0.take() }?.stop()
        send("STOPPING=1")
    }

    /// MAINPID=`pid`, and the wait until systemd has handled it (at most 5 s).
    private func announceMainProcess(_ pid: Int32) {
        guard let socket else { return }
        send("MAINPID=\(pid)")
        do {
            if try !socket.barrier(timeoutMilliseconds: 5000) { logger.warning("systemd did not confirm MAINPID=\(pid) within 5 s") }
        } catch {
            logger.warning("systemd notification barrier: \(error.description)")
        }
    }

    private func send(_ state: String) {
        guard let socket else { return }
        do {
            try socket.send(state)
        } catch {
            logger.warning("systemd notification \(state) to \(socket.address): \(error.description)")
        }
    }
}
