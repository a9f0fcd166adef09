import Glibc
import VhostSystem
import VhostUser

/// One raw vhost-user connection to the daemon: builds any message (well-formed or not),
/// sends it with any fds, reads replies with a timeout. Blocking socket with poll timeouts.
final class Connection {
    let socket: FileDescriptor
    static let version: UInt32 = 1
    static let needReply: UInt32 = 1 << 3

    init(path: String) throws {
        socket = try UnixSocket.connect(path: path)
        try socket.setNonBlocking()
    }

    func close() { socket.close() }

    /// Sends everything; false when the daemon closed the connection (EPIPE/ECONNRESET) or
    /// the socket stayed full for `timeoutMilliseconds`.
    @discardableResult
    func sendRaw(_ bytes: [UInt8], fds: [FileDescriptor] = [], timeoutMilliseconds: Int32 = 1000) -> Bool {
        var offset = 0
        var attached = fds
        if bytes.isEmpty { return true }
        while offset < bytes.count {
            do {
                offset += try UnixSocket.send(socket, bytes: Array(bytes[offset...]), fds: attached)
                attached = []
            } catch {
                guard error.wouldBlock else { return false }
                var pfd = pollfd(fd: socket.rawValue, events: Int16(POLLOUT), revents: 0)
                if poll(&pfd, 1, timeoutMilliseconds) <= 0 { return false }
            }
        }
        return true
    }

    static func header(_ request: UInt32, flags: UInt32 = version, size: Int) -> [UInt8] {
        var w = Writer()
        w.u32(request)
        w.u32(flags)
        w.u32(UInt32(truncatingIfNeeded: size))
        return w.bytes
    }

    @discardableResult
    func send(_ request: UInt32, _ payload: [UInt8] = [], fds: [FileDescriptor] = [], needReply: Bool = false,
              flags: UInt32 = version) -> Bool {
        sendRaw(Self.header(request, flags: flags | (needReply ? Self.needReply : 0), size: payload.count) + payload, fds: fds)
    }

    @discardableResult
    func send(_ request: VhostUserRequest, _ payload: [UInt8] = [], fds: [FileDescriptor] = [], needReply: Bool = false) -> Bool {
        send(request.rawValue, payload, fds: fds, needReply: needReply)
    }

    enum Reply: Equatable {
        case message(request: UInt32, payload: [UInt8])
        case closed
        case timedOut
        var u64: UInt64? {
            guard case .message(_, let p) = self, p.count == 8 else { return nil }
            return p.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
        }
    }

    /// The next reply (header + payload), or .closed / .timedOut.
    func readReply(timeoutMilliseconds: Int32 = 1000) -> Reply {
        var buffer: [UInt8] = []
        var wanted = 12
        while buffer.count < wanted {
            var pfd = pollfd(fd: socket.rawValue, events: Int16(POLLIN), revents: 0)
            if poll(&pfd, 1, timeoutMilliseconds) <= 0 { return .timedOut }
            do {
                let received = try UnixSocket.receive(socket, maxBytes: wanted - buffer.count)
                if received.bytes.isEmpty { return .closed }
                buffer += received.bytes
                if buffer.count == 12 {
                    let size = Int(buffer.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 8, as: UInt32.self) })
                    wanted = 12 + size
                }
            } catch {
                if error.wouldBlock { continue }
                return .closed
            }
        }
        let request = buffer.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 0, as: UInt32.self) }
        return .message(request: request, payload: Array(buffer[12...]))
    }

    /// Sends with need_reply and returns the REPLY_ACK value; nil when the daemon closed
    /// the connection or did not answer.
    func acked(_ request: VhostUserRequest, _ payload: [UInt8] = [], fds: [FileDescriptor] = []) -> UInt64? {
        guard send(request, payload, fds: fds, needReply: true) else { return nil }
        return readReply().u64
    }

    /// True when the daemon closes the connection within the timeout (replies are discarded).
    func waitForClose(timeoutMilliseconds: Int32 = 1000) -> Bool {
        while true {
            switch readReply(timeoutMilliseconds: timeoutMilliseconds) {
            case .closed: return true
            case .timedOut: return false
            case .message: continue
            }
        }
    }
}

struct Writer {
    var bytes: [UInt8] = []
    mutating func u16(_ v: UInt16) { bytes += [UInt8(v & 0xff), UInt8(v >> 8)] }
    mutating func u32(_ v: UInt32) { u16(UInt16(v & 0xffff)); u16(UInt16(v >> 16)) }
    mutating func u64(_ v: UInt64) { u32(UInt32(v & 0xffff_ffff)); u32(UInt32(v >> 32)) }
}

enum Payload {
    static func u64(_ v: UInt64) -> [UInt8] { var w = Writer(); w.u64(v); return w.bytes }
    static func state(_ index: UInt32, _ num: UInt32) -> [UInt8] { var w = Writer(); w.u32(index); w.u32(num); return w.bytes }
    static func address(_ index: UInt32, flags: UInt32 = 0, descriptor: UInt64, used: UInt64, avail: UInt64, log: UInt64 = 0) -> [UInt8] {
        var w = Writer()
        w.u32(index); w.u32(flags); w.u64(descriptor); w.u64(used); w.u64(avail); w.u64(log)
        return w.bytes
    }
    struct Region { var gpa: UInt64; var size: UInt64; var uva: UInt64; var offset: UInt64 }
    static func memoryTable(_ regions: [Region], declared: UInt32? = nil) -> [UInt8] {
        var w = Writer()
        w.u32(declared ?? UInt32(regions.count)); w.u32(0)
        for r in regions { w.u64(r.gpa); w.u64(r.size); w.u64(r.uva); w.u64(r.offset) }
        return w.bytes
    }
    static func singleRegion(_ r: Region) -> [UInt8] {
        var w = Writer()
        w.u64(0); w.u64(r.gpa); w.u64(r.size); w.u64(r.uva); w.u64(r.offset)
        return w.bytes
    }
    static func logBase(size: UInt64, offset: UInt64) -> [UInt8] { u64(size) + u64(offset) }
}
