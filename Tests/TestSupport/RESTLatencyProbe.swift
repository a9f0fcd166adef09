import Foundation
import Glibc
import Synchronization
import VhostSystem

/// Times one REST call every `intervalMilliseconds` on its own thread while a test runs, and
/// keeps the slowest. Plain HTTP/1.1 over the API's unix socket (no curl), so what is timed is
/// the daemon's answer and not a process start.
public final class RESTLatencyProbe: @unchecked Sendable {
    public struct Summary: Sendable, CustomStringConvertible {
        public var calls: Int
        public var failures: Int
        public var slowestMilliseconds: Double
        /// The first failure, for the assertion message.
        public var firstFailure: String?

        public init(calls: Int = 0, failures: Int = 0, slowestMilliseconds: Double = 0, firstFailure: String? = nil) {
            self.calls = calls
            self.failures = failures
            self.slowestMilliseconds = slowestMilliseconds
            self.firstFailure = firstFailure
        }
        public var description: String {
            "\(calls) calls, slowest \(String(format: "%.1f", slowestMilliseconds)) ms, \(failures) failed"
                + (firstFailure.map { " (first: \($0))" } ?? "")
        }
    }

    public let socketPath: String
    public let path: String
    public let intervalMilliseconds: Int
    private let state = Mutex(Summary(calls: 0, failures: 0, slowestMilliseconds: 0))
    private let stopping = Atomic<Bool>(false)
    private var thread: SystemThread?

    public init(socketPath: String, path: String = "/v1/stats", intervalMilliseconds: Int = 100) {
        self.socketPath = socketPath
        self.path = path
        self.intervalMilliseconds = intervalMilliseconds
    }

    public convenience init(_ daemon: SwitchDaemonProcess, path: String = "/v1/stats", intervalMilliseconds: Int = 100) {
        self.init(socketPath: daemon.apiSocketPath, path: path, intervalMilliseconds: intervalMilliseconds)
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

    private func record(_ result: Result<Double, ProbeError>) {
        state.withLock { summary in
            summary.calls += 1
            switch result {
            case .success(let milliseconds):
                summary.slowestMilliseconds = max(summary.slowestMilliseconds, milliseconds)
            case .failure(let error):
                summary.failures += 1
                if summary.firstFailure == nil { summary.firstFailure = error.description }
            }
        }
    }

    struct ProbeError: Error, CustomStringConvertible { var description: String }

    /// One GET, connect to last byte; the milliseconds it took, or why it failed.
    func timedCall() -> Result<Double, ProbeError> {
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
        guard response.starts(with: Array("HTTP/1.1 200".utf8)) else {
            return .failure(ProbeError(description: String(decoding: response.prefix(80), as: UTF8.self)))
        }
        return .success(milliseconds)
    }
}
