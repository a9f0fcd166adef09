import Synchronization

/// The bytes waiting for one Server-Sent Events client. The event hub appends, the HTTP
/// server drains. When the buffer is empty the server parks the connection (libmicrohttpd
/// suspend) instead of polling, and the next `send` wakes it (resume): no busy loop, and
/// `curl -N` sees each event as it happens.
///
/// Suspend and resume are both called under this stream's lock, so a resume can never
/// overtake the suspend it answers, and resume is only ever called on a connection that is
/// suspended (which libmicrohttpd never frees while suspended).
public final class EventStream: @unchecked Sendable {
    /// A client this far behind is cut off rather than buffered without bound.
    public static let maxPendingBytes = 1 << 20

    private struct State {
        var pending: [UInt8] = []
        var offset = 0
        var closed = false
        var waiting = false
        var resume: (@Sendable () -> Void)?
    }

    private let state = Mutex(State())
    private let finishedFlag = Atomic<Bool>(false)

    public init(initial: [UInt8] = []) {
        state.withLock { $0.pending = initial }
    }

    /// Queues bytes for the client; false when the stream is closed or finished (the hub
    /// then forgets it).
    @discardableResult
    public func send(_ bytes: [UInt8]) -> Bool {
        if isFinished { return false }
        return state.withLock { state in
            if state.closed { return false }
            if state.pending.count - state.offset + bytes.count > Self.maxPendingBytes {
                // Too slow a reader: end the stream (it may reconnect with Last-Event-ID).
                state.pending = []
                state.offset = 0
                state.closed = true
            } else {
                state.pending.append(contentsOf: bytes)
            }
            if state.waiting {
                state.waiting = false
                state.resume?()
            }
            return !state.closed
        }
    }

    /// Ends the stream once the queued bytes are written (shutdown).
    public func close() {
        state.withLock { state in
            state.closed = true
            if state.waiting {
                state.waiting = false
                state.resume?()
            }
        }
    }

    /// True once the HTTP connection is gone.
    public var isFinished: Bool { finishedFlag.load(ordering: .acquiring) }

    // MARK: Server side

    enum ReadResult: Equatable { case bytes(Int), wait, end }

    func attach(resume: @escaping @Sendable () -> Void) {
        state.withLock { $0.resume = resume }
    }

    /// Copies pending bytes into `buffer`; with none, calls `suspend` (under the lock) and
    /// returns `.wait`.
    func read(into buffer: UnsafeMutableRawBufferPointer, suspend: () -> Void) -> ReadResult {
        state.withLock { state in
            let available = state.pending.count - state.offset
            if available > 0 {
                let count = min(available, buffer.count)
                state.pending.withUnsafeBytes { source in
                    // Unsafe: offset + count <= pending.count and count <= buffer.count.
                    buffer.baseAddress!.copyMemory(from: source.baseAddress! + state.offset, byteCount: count)
                }
                state.offset += count
                if state.offset == state.pending.count {
                    state.pending.removeAll(keepingCapacity: state.pending.capacity <= 65536)
                    state.offset = 0
                }
                return .bytes(count)
            }
            if state.closed { return .end }
            state.waiting = true
            suspend()
            return .wait
        }
    }

    /// The connection ended; called without taking the lock (libmicrohttpd may call the
    /// response's free callback while holding its own locks).
    func markFinished() {
        finishedFlag.store(true, ordering: .releasing)
    }
}
