import CVhostShims
import Glibc

/// A Linux eventfd: vhost-user kick and call notifications, and thread wake-ups.
public final class EventFD: @unchecked Sendable {
    public let descriptor: FileDescriptor

    public init(nonBlocking: Bool = true) throws(SystemError) {
        let flags = Int32(EFD_CLOEXEC) | (nonBlocking ? Int32(EFD_NONBLOCK) : 0)
        descriptor = FileDescriptor(adopting: try systemCall("eventfd") { eventfd(0, flags) })
    }

    public init(adopting descriptor: FileDescriptor) { self.descriptor = descriptor }

    public var rawValue: Int32 { descriptor.rawValue }

    /// Adds one to the counter. A full counter (EAGAIN) already wakes the reader, so it is ignored.
    public func signal() {
        EventFD.signal(raw: descriptor.rawValue)
    }

    /// Signal by raw fd, for the hot path where the fd is cached as an integer.
    @inlinable
    public static func signal(raw: Int32) {
        var one: UInt64 = 1
        _ = withUnsafeBytes(of: &one) { Glibc.write(raw, $0.baseAddress, 8) }
    }

    /// Reads and clears the counter; returns 0 when nothing was pending (non-blocking).
    @discardableResult
    public func drain() -> UInt64 {
        var value: UInt64 = 0
        let n = withUnsafeMutableBytes(of: &value) { Glibc.read(descriptor.rawValue, $0.baseAddress, 8) }
        return n == 8 ? value : 0
    }
}
