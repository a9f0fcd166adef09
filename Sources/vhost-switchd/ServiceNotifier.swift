import Logging
import ManagementPlane
import PortService
import VhostSystem

/// What the service manager (systemd, Type=notify; deploy/systemd/vhost-switchd.service) is
/// told, and when. Without $NOTIFY_SOCKET (a shell, Kubernetes) every call does nothing.
///
/// - `ready`: READY=1 once the daemon serves: its saved ports restored, its API answering.
///   A `--takeover` process sends MAINPID=<its pid> first (`afterTakeover`), and waits until
///   systemd has taken it in (sd_notify_barrier), so that the old main process's exit, which
///   follows the hand-over, ends neither the service nor the reload. NotifyAccess=all lets a
///   process started by ExecReload do this.
/// - WATCHDOG=1 every half $WATCHDOG_USEC while the threads make progress (`ServiceWatchdog`).
/// - `stopping`: STOPPING=1 when shutdown begins.
final class ServiceNotifier {
    private let socket: ServiceManagerSocket?
    private let logger: Logger
    private var watchdog: ServiceWatchdog?

    init(logger: Logger) {
        socket = ServiceManagerSocket.fromEnvironment()
        self.logger = logger
    }

    /// READY=1 (after MAINPID= when this process took over from a running daemon), then the
    /// watchdog, when systemd asked for one, fed by `progress` as judged by `readiness`.
    func ready(afterTakeover: Bool = false, readiness: ReadinessMonitor, progress: @escaping @Sendable () -> [ProgressCounter]) {
        guard let socket else { return }
        if afterTakeover {
            send("MAINPID=\(ServiceManagerSocket.processID)")
            do {
                if try !socket.barrier(timeoutMilliseconds: 5000) { logger.warning("systemd did not confirm MAINPID= within 5 s") }
            } catch {
                logger.warning("systemd notification barrier: \(error.description)")
            }
        }
        send("READY=1")
        guard watchdog == nil, let microseconds = ServiceManagerSocket.watchdogMicrosecondsFromEnvironment() else { return }
        let watchdog = ServiceWatchdog(watchdogMicroseconds: microseconds, monitor: readiness, progress: progress) { [socket] in
            try? socket.send("WATCHDOG=1")
        }
        do {
            try watchdog.start()
            self.watchdog = watchdog
            logger.info("systemd watchdog: pinging every \(microseconds / 2000) ms while the control loop and poll threads make progress")
        } catch {
            logger.error("systemd watchdog thread: \(error.description)")
        }
    }

    /// STOPPING=1; the watchdog stops with it (systemd's stop timeout takes over).
    func stopping() {
        watchdog?.stop()
        watchdog = nil
        send("STOPPING=1")
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
