import CVhostShims
import Glibc

/// The unix socket between a running daemon and the one taking over from it (live
/// hand-over): length-prefixed frames (a u32 little-endian length, then the bytes) and fds in
/// batches of at most 8, each batch on a one-byte message of its own. Every read takes exactly
/// the bytes it expects, so a frame never swallows the next batch's fds. Every wait has a
/// deadline: the peer is another process that may die or hang at any point.
public final class HandoverChannel: @unchecked Sendable {  // used by one thread at a time
    public static let maxFrameBytes = 16 << 20
    public let socket: FileDescriptor

    public struct Failure: Error, CustomStringConvertible {
        public var description: String
        public init(_ description: String) { self.description = description }
    }

    /// `socket`: connected; made non-blocking (waits go through poll with a deadline).
    public init(socket: FileDescriptor) {
        self.socket = socket
        try? socket.setNonBlocking()
    }

    public static func connect(path: String) throws(Failure) -> HandoverChannel {
        do { return HandoverChannel(socket: try UnixSocket.connect(path: path)) } catch {
            throw Failure("cannot connect to \(path): \(error)")
        }
    }

    /// The user id of the process on the other end (SO_PEERCRED).
    public var peerUserID: UInt32? { PeerIdentity.unixPeerUserID(socket.rawValue) }

    // MARK: Sending

    public func send(frame: [UInt8], timeoutMilliseconds: Int = 5000) throws(Failure) {
        guard frame.count <= Self.maxFrameBytes else { throw Failure("frame of \(frame.count) bytes") }
        let length = UInt32(frame.count)
        try sendAll([UInt8(truncatingIfNeeded: length), UInt8(truncatingIfNeeded: length >> 8),
                     UInt8(truncatingIfNeeded: length >> 16), UInt8(truncatingIfNeeded: length >> 24)] + frame,
                    fds: [], timeoutMilliseconds: timeoutMilliseconds)
    }

    /// Sends `descriptors` (they stay open here: the receiver gets its own copies).
    public func send(descriptors: [FileDescriptor], timeoutMilliseconds: Int = 5000) throws(Failure) {
        var start = 0
        while start < descriptors.count {
            let batch = descriptors[start..<min(descriptors.count, start + Int(VHOST_SHIMS_MAX_FDS))]
            try sendAll([UInt8(batch.count)], fds: Array(batch), timeoutMilliseconds: timeoutMilliseconds)
            start += batch.count
        }
    }

    private func sendAll(_ bytes: [UInt8], fds: [FileDescriptor], timeoutMilliseconds: Int) throws(Failure) {
        var offset = 0
        var pendingFds = fds
        let deadline = MonotonicClock.nanoseconds() + UInt64(timeoutMilliseconds) * 1_000_000
        while offset < bytes.count {
            do {
                offset += try UnixSocket.send(socket, bytes: Array(bytes[offset...]), fds: pendingFds)
                pendingFds = []
            } catch {
                guard error.wouldBlock else { throw Failure("send: \(error)") }
                try wait(for: POLLOUT, until: deadline)
            }
        }
    }

    // MARK: Receiving

    /// The next frame; throws on end of stream, a deadline passed or a frame too large.
    public func receiveFrame(timeoutMilliseconds: Int) throws(Failure) -> [UInt8] {
        let deadline = MonotonicClock.nanoseconds() + UInt64(timeoutMilliseconds) * 1_000_000
        let header = try receiveExactly(4, until: deadline).bytes
        let length = Int(header[0]) | Int(header[1]) << 8 | Int(header[2]) << 16 | Int(header[3]) << 24
        guard length <= Self.maxFrameBytes else { throw Failure("frame of \(length) bytes announced") }
        return try receiveExactly(length, until: deadline).bytes
    }

    /// Exactly `count` fds, sent by `send(descriptors:)`.
    public func receiveDescriptors(count: Int, timeoutMilliseconds: Int) throws(Failure) -> [FileDescriptor] {
        let deadline = MonotonicClock.nanoseconds() + UInt64(timeoutMilliseconds) * 1_000_000
        var received: [FileDescriptor] = []
        while received.count < count {
            let batch = try receiveExactly(1, until: deadline)
            received += batch.descriptors
            guard Int(batch.bytes[0]) == batch.descriptors.count, !batch.truncated else {
                for descriptor in received { descriptor.close() }
                throw Failure("a batch announced \(batch.bytes[0]) fds and carried \(batch.descriptors.count)")
            }
        }
        guard received.count == count else {
            for descriptor in received { descriptor.close() }
            throw Failure("\(received.count) fds received, \(count) announced")
        }
        return received
    }

    /// Waits until the peer closes its end (it exited); false when the deadline passed first
    /// or it sent something instead.
    public func waitForClose(timeoutMilliseconds: Int) -> Bool {
        let deadline = MonotonicClock.nanoseconds() + UInt64(timeoutMilliseconds) * 1_000_000
        do {
            _ = try receiveExactly(1, until: deadline)
            return false
        } catch {
            return error.description == Self.closed
        }
    }

    private static let closed = "the peer closed the connection"

    private func receiveExactly(_ count: Int, until deadline: UInt64) throws(Failure) -> (bytes: [UInt8], descriptors: [FileDescriptor], truncated: Bool) {
        var bytes: [UInt8] = []
        var descriptors: [FileDescriptor] = []
        var truncated = false
        while bytes.count < count {
            do {
                let part = try UnixSocket.receive(socket, maxBytes: count - bytes.count, maxDescriptors: Int(VHOST_SHIMS_MAX_FDS))
                if part.bytes.isEmpty { throw Failure(Self.closed) }
                bytes += part.bytes
                descriptors += part.descriptors
                truncated = truncated || part.descriptorsTruncated
            } catch let error as SystemError {
                guard error.wouldBlock else { throw Failure("receive: \(error)") }
                try wait(for: POLLIN, until: deadline)
            } catch let error as Failure {
                throw error
            } catch {
                throw Failure("\(error)")
            }
        }
        return (bytes, descriptors, truncated)
    }

    private func wait(for events: Int32, until deadline: UInt64) throws(Failure) {
        let now = MonotonicClock.nanoseconds()
        guard now < deadline else { throw Failure("timed out") }
        var entry = pollfd(fd: socket.rawValue, events: Int16(events), revents: 0)
        let milliseconds = Int32(min((deadline - now) / 1_000_000 + 1, UInt64(Int32.max)))
        let ready = Glibc.poll(&entry, 1, milliseconds)
        if ready == 0 { throw Failure("timed out") }
    }
}
