import Glibc
import VhostSystem
import VhostUser
import Virtio

/// A scriptable vhost-user front-end for tests and for the hostile tool (Fuzz/HostileFrontend):
/// builds every request (well-formed or not, any flags), sends it with any fds, and reads
/// replies with a time-out, telling a closed session from a silent one. `pump` runs while
/// waiting, so a test that drives a `VhostUserConnection` directly can let it process the
/// request; without one, waits sleep in poll(2) on the socket.
public final class FakeFrontend {
    public let socket: FileDescriptor
    public var pump: (() -> Void)?

    public enum Failure: Error, Equatable {
        /// The socket stayed full for the whole send time-out.
        case sendTimedOut
    }

    /// What came back for a request: a reply, the end of the session, or nothing in time.
    public enum Answer: Equatable {
        case reply(Reply)
        case closed
        case timedOut

        public var reply: Reply? { if case .reply(let reply) = self { reply } else { nil } }
        public var u64: UInt64? { reply?.u64 }
    }

    public struct Reply: Equatable {
        public var request: UInt32
        public var flags: UInt32
        public var payload: [UInt8]
        public var u64: UInt64? {
            var reader = LittleEndianReader(payload)
            return payload.count == 8 ? reader.u64() : nil
        }
    }

    public init(socket: FileDescriptor) {
        self.socket = socket
        try? socket.setNonBlocking()
    }

    /// A connected pair: the front-end, and the socket to give the back-end.
    public static func pair() throws -> (frontend: FakeFrontend, backend: FileDescriptor) {
        let (a, b) = try UnixSocket.pair()
        try b.setNonBlocking()
        return (FakeFrontend(socket: a), b)
    }

    public static func connect(path: String) throws -> FakeFrontend {
        FakeFrontend(socket: try UnixSocket.connect(path: path))
    }

    // MARK: Sending

    /// Sends bytes with `fds` attached to the first sendmsg (at most 8), retrying while the
    /// socket is full (pumping the back-end meanwhile): for ever, or until
    /// `timeoutMilliseconds` passed (then `Failure.sendTimedOut`). A closed peer throws its errno.
    public func sendRaw(_ bytes: [UInt8], fds: [FileDescriptor] = [], timeoutMilliseconds: Int? = nil) throws {
        let deadline = timeoutMilliseconds.map { MonotonicClock.nanoseconds() + UInt64($0) * 1_000_000 } ?? .max
        var offset = 0
        var attached = fds
        while true {
            do {
                offset += try UnixSocket.send(socket, bytes: Array(bytes[offset...]), fds: attached)
                attached = []
                if offset >= bytes.count { return }
            } catch {
                guard error.wouldBlock else { throw error }
                pump?()
                guard wait(for: POLLOUT, until: deadline) else { throw Failure.sendTimedOut }
            }
        }
    }

    /// Waits until the socket has `events` or `deadline` (monotonic nanoseconds) comes; false
    /// once it has passed. With a `pump` it waits at most 1 ms, so the back-end runs between.
    private func wait(for events: Int32, until deadline: UInt64) -> Bool {
        let now = MonotonicClock.nanoseconds()
        guard now < deadline else { return false }
        let remaining = Int32(clamping: (deadline - now + 999_999) / 1_000_000)
        var descriptor = pollfd(fd: socket.rawValue, events: Int16(events), revents: 0)
        _ = poll(&descriptor, 1, pump == nil ? remaining : min(remaining, 1))
        return true
    }

    public static func header(_ request: UInt32, flags: UInt32 = VhostUserHeader.version, size: Int) -> [UInt8] {
        VhostUserHeader(request: request, flags: flags, size: UInt32(size)).encoded
    }

    public func send(_ request: VhostUserRequest, _ payload: [UInt8] = [], fds: [FileDescriptor] = [], needReply: Bool = false,
                     timeoutMilliseconds: Int? = nil) throws {
        try sendCode(request.rawValue, payload, fds: fds, needReply: needReply, timeoutMilliseconds: timeoutMilliseconds)
    }

    /// Any request code with any header flags (NEED_REPLY added when `needReply`).
    public func sendCode(_ code: UInt32, _ payload: [UInt8] = [], fds: [FileDescriptor] = [], needReply: Bool = false,
                         flags: UInt32 = VhostUserHeader.version, timeoutMilliseconds: Int? = nil) throws {
        let allFlags = flags | (needReply ? VhostUserHeader.needReplyFlag : 0)
        try sendRaw(Self.header(code, flags: allFlags, size: payload.count) + payload, fds: fds, timeoutMilliseconds: timeoutMilliseconds)
    }

    // MARK: Payload builders

    public static func u64(_ value: UInt64) -> [UInt8] {
        var writer = LittleEndianWriter()
        writer.u64(value)
        return writer.bytes
    }

    public static func vringState(index: UInt32, num: UInt32) -> [UInt8] {
        var writer = LittleEndianWriter()
        writer.u32(index)
        writer.u32(num)
        return writer.bytes
    }

    public static func vringAddress(index: UInt32, flags: UInt32 = 0, descriptor: UInt64, used: UInt64, avail: UInt64, log: UInt64 = 0) -> [UInt8] {
        var writer = LittleEndianWriter()
        writer.u32(index)
        writer.u32(flags)
        writer.u64(descriptor)
        writer.u64(used)
        writer.u64(avail)
        writer.u64(log)
        return writer.bytes
    }

    public static func region(_ region: GuestMemoryRegionDescriptor) -> [UInt8] {
        var writer = LittleEndianWriter()
        writer.u64(region.guestPhysicalAddress)
        writer.u64(region.size)
        writer.u64(region.userspaceAddress)
        writer.u64(region.mmapOffset)
        return writer.bytes
    }

    /// SET_MEM_TABLE: nregions (or `declaredCount`), padding, the regions.
    public static func memoryTable(_ regions: [GuestMemoryRegionDescriptor], declaredCount: UInt32? = nil) -> [UInt8] {
        var writer = LittleEndianWriter()
        writer.u32(declaredCount ?? UInt32(regions.count))
        writer.u32(0)
        for entry in regions { writer.append(region(entry)) }
        return writer.bytes
    }

    /// ADD_MEM_REG / REM_MEM_REG: u64 padding, one region.
    public static func singleRegion(_ entry: GuestMemoryRegionDescriptor) -> [UInt8] {
        u64(0) + region(entry)
    }

    public static func logBase(size: UInt64, offset: UInt64) -> [UInt8] {
        u64(size) + u64(offset)
    }

    /// SET_VRING_KICK/CALL/ERR word: index, plus bit 8 when no fd follows.
    public static func vringFile(index: UInt64, noFd: Bool = false) -> [UInt8] {
        u64(index | (noFd ? 1 << 8 : 0))
    }

    // MARK: Receiving

    /// The next reply, or nil when none came within the timeout or the peer closed.
    public func readReply(timeoutMilliseconds: Int = 2000) -> Reply? {
        receiveAnswer(timeoutMilliseconds: timeoutMilliseconds).reply
    }

    /// The next message (header and payload), the end of the session (EOF or a socket
    /// error), or nothing within the timeout.
    public func receiveAnswer(timeoutMilliseconds: Int = 2000) -> Answer {
        var buffer: [UInt8] = []
        var wanted = VhostUserHeader.size
        var header: VhostUserHeader?
        let deadline = MonotonicClock.nanoseconds() + UInt64(timeoutMilliseconds) * 1_000_000
        while true {
            pump?()
            do {
                let received = try UnixSocket.receive(socket, maxBytes: wanted - buffer.count)
                if received.bytes.isEmpty { return .closed }
                buffer += received.bytes
                if header == nil, buffer.count == VhostUserHeader.size {
                    header = VhostUserHeader(decoding: buffer)
                    wanted = VhostUserHeader.size + Int(header!.size)
                }
                if let header, buffer.count == wanted {
                    return .reply(Reply(request: header.request, flags: header.flags, payload: Array(buffer[VhostUserHeader.size...])))
                }
            } catch {
                if !error.wouldBlock { return .closed }
                guard wait(for: POLLIN, until: deadline) else { return .timedOut }
            }
        }
    }

    /// True when the back-end closed the connection (EOF) within the timeout. Discards
    /// anything it sent before.
    public func waitForClose(timeoutMilliseconds: Int = 2000) -> Bool {
        let deadline = MonotonicClock.nanoseconds() + UInt64(timeoutMilliseconds) * 1_000_000
        while true {
            pump?()
            do {
                let received = try UnixSocket.receive(socket, maxBytes: 4096)
                if received.bytes.isEmpty { return true }
            } catch {
                if !error.wouldBlock { return true }
                guard wait(for: POLLIN, until: deadline) else { return false }
            }
        }
    }

    /// Nothing to read right now (and not closed).
    public func hasNoPendingInput() -> Bool {
        do {
            _ = try UnixSocket.receive(socket, maxBytes: 1)
            return false
        } catch {
            return error.wouldBlock
        }
    }

    // MARK: Request helpers (send, then wait for the reply)

    public func request(_ request: VhostUserRequest, _ payload: [UInt8] = [], fds: [FileDescriptor] = [], needReply: Bool = false) throws -> Reply? {
        try send(request, payload, fds: fds, needReply: needReply)
        return readReply()
    }

    /// Sends with need_reply and returns the REPLY_ACK value (0 success), nil when none came
    /// within `timeoutMilliseconds` (a send blocked on a full socket gives up after
    /// `sendTimeoutMilliseconds`, never when nil).
    public func acked(_ request: VhostUserRequest, _ payload: [UInt8] = [], fds: [FileDescriptor] = [],
                      timeoutMilliseconds: Int = 2000, sendTimeoutMilliseconds: Int? = nil) throws -> UInt64? {
        try send(request, payload, fds: fds, needReply: true, timeoutMilliseconds: sendTimeoutMilliseconds)
        return readReply(timeoutMilliseconds: timeoutMilliseconds)?.u64
    }

    public func close() { socket.close() }
}

extension FakeFrontend {
    /// The usual session start: features, protocol features, owner, memory table, and (with
    /// the STATUS protocol feature) a driver status of DRIVER_OK, without which the back-end
    /// does not use the rings. Returns false when any step failed.
    @discardableResult
    public func negotiate(features: UInt64, protocolFeatures: UInt64 = VhostUserProtocolFeature.supportedMask,
                          memory: FakeFrontendMemory?) throws -> Bool {
        guard try request(.getFeatures)?.u64 != nil else { return false }
        if features & (1 << 30) != 0 {
            guard try request(.getProtocolFeatures)?.u64 != nil else { return false }
            try send(.setProtocolFeatures, Self.u64(protocolFeatures))
        }
        try send(.setFeatures, Self.u64(features))
        try send(.setOwner)
        if features & (1 << 30) != 0 && protocolFeatures & VhostUserProtocolFeature.status.mask != 0 {
            try send(.setStatus, Self.u64(Self.driverReadyStatus))
        }
        if let memory {
            let ack = try acked(.setMemTable, Self.memoryTable([memory.descriptor]), fds: [memory.fd])
            if protocolFeatures & VhostUserProtocolFeature.replyAck.mask != 0 && features & (1 << 30) != 0 {
                guard ack == 0 else { return false }
            }
        }
        return true
    }

    /// ACKNOWLEDGE | DRIVER | DRIVER_OK | FEATURES_OK, what QEMU sets once its rings run.
    public static let driverReadyStatus: UInt64 = 0x0f

    /// NUM, BASE, ADDR, KICK (an eventfd or NOFD), CALL for one ring; with REPLY_ACK each is acked.
    public func setUpRing(_ index: Int, size: UInt32 = 256, base: UInt32 = 0, memory: FakeFrontendMemory,
                          kick: FileDescriptor?, call: FileDescriptor?, flags: UInt32 = 0, log: UInt64 = 0) throws -> Bool {
        let i = UInt32(index)
        guard try acked(.setVringNum, Self.vringState(index: i, num: size)) == 0 else { return false }
        guard try acked(.setVringBase, Self.vringState(index: i, num: base)) == 0 else { return false }
        guard try acked(.setVringAddr, memory.vringAddressPayload(index, flags: flags, log: log)) == 0 else { return false }
        guard try acked(.setVringKick, Self.vringFile(index: UInt64(i), noFd: kick == nil), fds: kick.map { [$0] } ?? []) == 0 else { return false }
        guard try acked(.setVringCall, Self.vringFile(index: UInt64(i), noFd: call == nil), fds: call.map { [$0] } ?? []) == 0 else { return false }
        return true
    }

    public func enableRing(_ index: Int, _ enabled: Bool = true) throws -> Bool {
        try acked(.setVringEnable, Self.vringState(index: UInt32(index), num: enabled ? 1 : 0)) == 0
    }
}
