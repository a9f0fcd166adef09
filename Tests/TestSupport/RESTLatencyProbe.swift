import Foundation
import Glibc
import Synchronization
import VhostSystem

/// Times one REST call every `intervalMilliseconds` on its own thread while a test runs, and
/// keeps the slowest. Plain HTTP/1.1 over the API's unix socket (no curl), so what is timed is
/// the daemon's answer and not a process start.
///
/// Each call is also timed without the time the threads on its path were runnable but waiting
/// for a CPU (`RunQueueWait`: the probe's own thread and the daemon's threads other than its
/// poll threads). On two shared cores busy-polled by testpmd and the switch, that wait alone
/// reached 160 ms while the daemon itself answered in 15 ms; a daemon that stalls a call (a
/// lock held across a grace period, a control loop stuck in a burst) sleeps or runs meanwhile,
/// which this does not take away.
public final class RESTLatencyProbe: @unchecked Sendable {
    public struct Summary: Sendable, CustomStringConvertible {
        public var calls: Int
        public var failures: Int
        /// Connect to last byte, as the client saw it.
        public var slowestMilliseconds: Double
        /// The same less the time the call's threads waited for a CPU (the slowest call by this
        /// measure; without a daemon pid, the same as `slowestMilliseconds`).
        public var slowestServiceMilliseconds: Double
        /// The first failure, for the assertion message.
        public var firstFailure: String?

        public init(calls: Int = 0, failures: Int = 0, slowestMilliseconds: Double = 0, slowestServiceMilliseconds: Double = 0,
                    firstFailure: String? = nil) {
            self.calls = calls
            self.failures = failures
            self.slowestMilliseconds = slowestMilliseconds
            self.slowestServiceMilliseconds = slowestServiceMilliseconds
            self.firstFailure = firstFailure
        }
        public var description: String {
            "\(calls) calls, slowest \(String(format: "%.1f", slowestMilliseconds)) ms "
                + "(\(String(format: "%.1f", slowestServiceMilliseconds)) ms without waits for a CPU), \(failures) failed"
                + (firstFailure.map { " (first: \($0))" } ?? "")
        }
    }

    /// One call's times: wall, and wall less the run-queue wait of the threads on its path.
    struct CallTime {
        var milliseconds: Double
        var serviceMilliseconds: Double
    }

    public let socketPath: String
    public let path: String
    public let intervalMilliseconds: Int
    /// The daemon whose threads' CPU waits are left out of `slowestServiceMilliseconds`.
    public let daemonPID: pid_t?
    private let state = Mutex(Summary())
    private let stopping = Atomic<Bool>(false)
    private var thread: SystemThread?

    public init(socketPath: String, path: String = "/v1/stats", intervalMilliseconds: Int = 100, daemonPID: pid_t? = nil) {
        self.socketPath = socketPath
        self.path = path
        self.intervalMilliseconds = intervalMilliseconds
        self.daemonPID = daemonPID
    }

    public convenience init(_ daemon: SwitchDaemonProcess, path: String = "/v1/stats", intervalMilliseconds: Int = 100) {
        self.init(socketPath: daemon.apiSocketPath, path: path, intervalMilliseconds: intervalMilliseconds, daemonPID: daemon.pid)
    }

    /// Starts probing, on `cpus` when given (keep it off the poll thread's CPU).
    public func start(cpus: [Int] = []) throws {
        thread = try SystemThread(name: "rest-probe", cpus: cpus) { [self] in
            while !stopping.load(ordering: .relaxed) {
                record(timedCall())
                usleep(UInt32(intervalMilliseconds * 1000))
            }
        }
    }

    /// Stops probing and returns what it saw.
    @discardableResult
    public func stop() -> Summary {
        stopping.store(true, ordering: .relaxed)
        thread?.join()
        thread = nil
        return summary
    }

    public var summary: Summary { state.withLock { $0 } }

    private func record(_ result: Result<CallTime, ProbeError>) {
        state.withLock { summary in
            summary.calls += 1
            switch result {
            case .success(let time):
                summary.slowestMilliseconds = max(summary.slowestMilliseconds, time.milliseconds)
                summary.slowestServiceMilliseconds = max(summary.slowestServiceMilliseconds, time.serviceMilliseconds)
            case .failure(let error):
                summary.failures += 1
                if summary.firstFailure == nil { summary.firstFailure = error.description }
            }
        }
    }

    struct ProbeError: Error, CustomStringConvertible { var description: String }

    /// One GET, connect to last byte; the milliseconds it took, or why it failed.
    func timedCall() -> Result<CallTime, ProbeError> {
        let waitedBefore = RunQueueWait.nanoseconds(daemonPID: daemonPID)
        let started = MonotonicClock.nanoseconds()
        let socket: FileDescriptor
        do { socket = try UnixSocket.connect(path: socketPath) } catch { return .failure(ProbeError(description: "connect: \(error)")) }
        defer { socket.close() }
        let request = "GET \(path) HTTP/1.1\r\nHost: localhost\r\nAccept: application/json\r\nConnection: close\r\n\r\n"
        do { _ = try UnixSocket.send(socket, bytes: Array(request.utf8)) } catch { return .failure(ProbeError(description: "send: \(error)")) }
        var response: [UInt8] = []
        while true {
            var pfd = pollfd(fd: socket.rawValue, events: Int16(POLLIN), revents: 0)
            guard poll(&pfd, 1, 10_000) > 0 else { return .failure(ProbeError(description: "no answer within 10 s")) }
            do {
                let chunk = try UnixSocket.receive(socket, maxBytes: 65536)
                if chunk.bytes.isEmpty { break }
                response += chunk.bytes
            } catch {
                if error.wouldBlock { continue }
                return .failure(ProbeError(description: "receive: \(error)"))
            }
        }
        let milliseconds = Double(MonotonicClock.nanoseconds() - started) / 1e6
        // A thread that ended meanwhile takes its waits with it: then leave nothing out.
        let waitedAfter = RunQueueWait.nanoseconds(daemonPID: daemonPID)
        let waitedMilliseconds = waitedAfter >= waitedBefore ? Double(waitedAfter - waitedBefore) / 1e6 : 0
        guard response.starts(with: Array("HTTP/1.1 200".utf8)) else {
            return .failure(ProbeError(description: String(decoding: response.prefix(80), as: UTF8.self)))
        }
        return .success(CallTime(milliseconds: milliseconds, serviceMilliseconds: max(0, milliseconds - waitedMilliseconds)))
    }
}

/// Time spent runnable but waiting for a CPU (the second field of a thread's
/// /proc/.../schedstat, CONFIG_SCHED_INFO), summed over the calling thread and the daemon's
/// threads that a REST call passes through: every thread but the poll threads (`pmdN`), which
/// are always runnable and whose waits say nothing about one call.
enum RunQueueWait {
    static func nanoseconds(daemonPID: pid_t?) -> UInt64 {
        var total = waited(schedstat: "/proc/thread-self/schedstat")
        guard let daemonPID else { return total }
        let tasks = "/proc/\(daemonPID)/task"
        for thread in (try? FileManager.default.contentsOfDirectory(atPath: tasks)) ?? [] {
            let name = (try? String(contentsOfFile: "\(tasks)/\(thread)/comm", encoding: .utf8)) ?? ""
            if name.hasPrefix("pmd") { continue }
            total &+= waited(schedstat: "\(tasks)/\(thread)/schedstat")
        }
        return total
    }

    private static func waited(schedstat path: String) -> UInt64 {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return 0 }
        let fields = text.split(separator: " ")
        return fields.count >= 2 ? UInt64(fields[1]) ?? 0 : 0
    }
}
