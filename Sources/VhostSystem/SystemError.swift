import CVhostShims
import Glibc

/// A failed system call: which operation, and the errno it returned.
public struct SystemError: Error, Equatable, CustomStringConvertible {
    public let operation: String
    public let errno: Int32

    public init(_ operation: String, errno: Int32) {
        self.operation = operation
        self.errno = errno
    }

    public var description: String {
        "\(operation): \(String(cString: strerror(errno))) (errno \(errno))"
    }

    public var wouldBlock: Bool { errno == EAGAIN || errno == EWOULDBLOCK }
    public var noSuchDevice: Bool { errno == ENODEV || errno == ENXIO }
    public var permissionDenied: Bool { errno == EPERM || errno == EACCES }
}

/// The one place where system calls are retried on EINTR and errno becomes a typed error.
/// `body` returns the raw result; a negative value means failure with errno set.
@inlinable
@discardableResult
public func systemCall<T: BinaryInteger>(_ operation: @autoclosure () -> String, _ body: () -> T) throws(SystemError) -> T {
    while true {
        let result = body()
        if result >= 0 { return result }
        let code = vhost_shims_errno()
        if code == EINTR { continue }
        throw SystemError(operation(), errno: code)
    }
}
