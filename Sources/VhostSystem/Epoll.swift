import CVhostShims
import Glibc

/// An epoll instance. Each registration carries a caller-chosen 64-bit token.
public final class Epoll: @unchecked Sendable {
    public let descriptor: FileDescriptor

    public struct Event: Sendable {
        public var token: UInt64
        public var events: UInt32
        public var readable: Bool { events & UInt32(EPOLLIN.rawValue) != 0 }
        public var writable: Bool { events & UInt32(EPOLLOUT.rawValue) != 0 }
        public var hangup: Bool { events & (UInt32(EPOLLHUP.rawValue) | UInt32(EPOLLERR.rawValue) | UInt32(EPOLLRDHUP.rawValue)) != 0 }
    }

    public static let input = UInt32(EPOLLIN.rawValue)
    public static let output = UInt32(EPOLLOUT.rawValue)
    public static let peerHangup = UInt32(EPOLLRDHUP.rawValue)
    public static let edgeTriggered = UInt32(EPOLLET.rawValue)

    public init() throws(SystemError) {
        descriptor = FileDescriptor(adopting: try systemCall("epoll_create1") { epoll_create1(Int32(EPOLL_CLOEXEC)) })
    }

    public func add(_ fd: Int32, events: UInt32 = Epoll.input, token: UInt64) throws(SystemError) {
        try control(EPOLL_CTL_ADD, fd, events, token)
    }

    public func modify(_ fd: Int32, events: UInt32, token: UInt64) throws(SystemError) {
        try control(EPOLL_CTL_MOD, fd, events, token)
    }

    /// Removes a registration; an fd that was never added or is already closed is fine.
    public func remove(_ fd: Int32) {
        _ = epoll_ctl(descriptor.rawValue, EPOLL_CTL_DEL, fd, nil)
    }

    private func control(_ op: Int32, _ fd: Int32, _ events: UInt32, _ token: UInt64) throws(SystemError) {
        var event = epoll_event()
        event.events = events
        event.data.u64 = token
        try systemCall("epoll_ctl") { epoll_ctl(descriptor.rawValue, op, fd, &event) }
    }

    /// Waits up to `timeoutMilliseconds` (-1 forever) and appends ready events to `into`.
    /// An interrupted wait returns no events rather than waiting again with a stale timeout.
    public func wait(into events: inout [Event], maxEvents: Int = 64, timeoutMilliseconds: Int32) throws(SystemError) {
        events.removeAll(keepingCapacity: true)
        let raw = UnsafeMutablePointer<epoll_event>.allocate(capacity: maxEvents)
        defer { raw.deallocate() }
        let n = epoll_wait(descriptor.rawValue, raw, Int32(maxEvents), timeoutMilliseconds)
        if n < 0 {
            let code = vhost_shims_errno()
            if code == EINTR { return }
            throw SystemError("epoll_wait", errno: code)
        }
        for i in 0..<Int(n) {
            events.append(Event(token: raw[i].data.u64, events: raw[i].events))
        }
    }
}
