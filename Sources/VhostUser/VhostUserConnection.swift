import Logging
import VhostSystem
import Virtio

/// The dispatcher of one front-end session: reads framed messages, enforces each request's
/// row of `VhostUserRequestTable` (payload size, fds, protocol feature, ring-change budget,
/// allowed states), decodes the payload, runs the handler on the `VhostUserSession`,
/// replies or refuses, and republishes the rings once per read batch that changed them.
/// Only one thread drives it (the control loop's, or a test's); it never blocks: reads and
/// replies are non-blocking, and a front-end that does not read its replies is disconnected.
public final class VhostUserConnection: @unchecked Sendable {
    public let device: VhostUserDevice
    let socket: FileDescriptor
    private var reader = VhostUserMessageReader()
    /// The device state this session built up.
    let session: VhostUserSession
    private var ringChangeBudget: RingChangeBudget
    /// Ring-changing requests were handled since the queues were last published: publish
    /// once, when the socket has nothing more to read (one republish per batch, not two per request).
    private var publicationPending = false
    public private(set) var isClosed = false
    /// Why the session ended; nil while open or after an orderly close.
    public private(set) var closeReason: VhostUserProtocolError?
    /// Called once, before the socket closes (the control loop unregisters it from epoll).
    var willClose: ((VhostUserConnection) -> Void)?
    /// Messages handled in this session (accepted or refused).
    public private(set) var messageCount = 0
    /// Set while a handed-over session's requests are replayed (`+Adoption`): nothing is
    /// sent to the front-end, and the first refusal ends the replay.
    var replaying = false
    var replayFailure: VhostUserProtocolError?

    /// The device's offered features when the session started; fixed for the session.
    public var sessionOfferedFeatures: UInt64 { session.offeredFeatures }
    public var negotiatedFeatures: UInt64? { session.negotiatedFeatures }
    public var negotiatedProtocolFeatures: UInt64? { session.negotiatedProtocolFeatures }
    /// Raised by the SIGBUS handler (this session's guest memory or log faulted) or by a
    /// poll thread (one of its rings stopped); the control loop then calls `closeIfFaulted`.
    public var faultFlag: GuestFaultFlag { session.faultFlag }

    private var logger: Logger { device.logger }

    /// Starts a session on `socket` (non-blocking, connected). Replaces nothing: the
    /// caller makes sure the device has no other session. `adoptedOffer`: the session was
    /// handed over (`+Adoption`), negotiated against that offer; it is not a new connection.
    public convenience init(device: VhostUserDevice, socket: FileDescriptor) {
        self.init(device: device, socket: socket, adoptedOffer: nil)
    }

    init(device: VhostUserDevice, socket: FileDescriptor, adoptedOffer: UInt64?) {
        self.device = device
        self.socket = socket
        session = VhostUserSession(device: device, offeredFeatures: adoptedOffer)
        let perSecond = VhostUserLimits.ringChangesPerSecond + VhostUserLimits.ringChangesPerSecondPerVring * session.vrings.count
        ringChangeBudget = RingChangeBudget(perSecond: perSecond, burst: perSecond + VhostUserLimits.maxMemorySlots)
        try? socket.setNonBlocking()
        device.connection = self
        guard adoptedOffer == nil else { return }
        device.sessionCount += 1
        logger.info("front-end connected", metadata: ["offered": "0x\(String(session.offeredFeatures, radix: 16))"])
        device.delegate.deviceConnected(device)
    }

    // MARK: Input

    /// Handles what the socket has now, at most `maxMessages` messages (the control loop
    /// comes back while the socket stays readable). Returns false once the session ended.
    @discardableResult
    public func handleReadable(maxMessages: Int = 64) -> Bool {
        var handled = 0
        defer { publishIfPending() }
        while !isClosed && handled < maxMessages {
            switch reader.next(from: socket) {
            case .needMoreData:
                return true
            case .closed:
                close(reason: nil)
            case .failed(let error):
                close(reason: error)
            case .message(var message):
                handled += 1
                dispatch(&message)
            }
        }
        return !isClosed
    }

    /// Closes the session when its front-end has hung up, even with requests left unread
    /// (they have nobody to answer); true if it did. The control loop asks before it turns
    /// a new connection away.
    @discardableResult
    public func closeIfPeerHungUp() -> Bool {
        guard !isClosed, UnixSocket.peerHasHungUp(socket) else { return false }
        close(reason: nil)
        return true
    }

    /// Closes the session when its fault flag was raised (see `faultFlag`); true if it did.
    /// The control thread calls this when the flag's eventfd fires; a test calls it directly.
    @discardableResult
    public func closeIfFaulted() -> Bool {
        let raised = faultFlag.raised
        guard !isClosed, !raised.isEmpty else { return false }
        device.guestFaults += 1
        close(reason: raised.contains(.memoryFault) ? .guestMemoryFault : .ringStopped)
        return true
    }

    /// Ends the session: queues withdrawn, `deviceDestroyed`, every fd and mapping released.
    public func close(reason: VhostUserProtocolError?) {
        guard !isClosed else { return }
        isClosed = true
        closeReason = reason
        reader.reset()
        if let reason {
            device.sessionsClosedOnError += 1
            device.lastError = reason.description
            session.report(reason, closing: true)
        } else {
            logger.info("front-end disconnected")
        }
        session.end()
        willClose?(self)
        willClose = nil
        socket.close()
        if device.connection === self { device.connection = nil }
    }

    // MARK: Dispatch

    /// One request, in this order: the row's rules, the payload decoded (fields, the fds
    /// that go with them, the vring index), the ring-change budget, the queues withdrawn,
    /// the payload's values validated, the allowed states, the handler; then the reply.
    func dispatch(_ message: inout VhostUserMessage) {
        messageCount += 1
        // Whatever the payload did not take is closed when the message is done.
        defer { message.closeDescriptors() }
        guard let request = message.request else {
            refuse(message, .unknownRequest(message.header.request), reply: .ackOnly)
            return
        }
        if logger.logLevel <= .debug {
            // The first 8 payload bytes name the vring and its value for most ring messages.
            let head = message.payload.prefix(8).map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
            logger.debug("message \(request)", metadata: ["payload": "\(head)", "size": "\(message.payload.count)"])
        }
        let handler = VhostUserRequestTable.handler(for: request)
        let rule = handler.rule
        let decoded: VhostUserDecodedRequest
        do throws(VhostUserProtocolError) {
            try check(message, request, rule)
            decoded = try handler.decode(&message, session.vrings.count)
        } catch {
            refuse(message, error, reply: rule.reply)
            return
        }
        if rule.budgeted {
            // Each costs every poll thread a pause (or an injected frame): budgeted.
            guard ringChangeBudget.take(now: MonotonicClock.nanoseconds()) else {
                decoded.closeTakenDescriptors()
                close(reason: .tooManyRingChanges(perSecond: ringChangeBudget.perSecond))
                return
            }
        }
        if rule.changesRings { session.withdrawQueues() }
        do throws(VhostUserProtocolError) {
            try decoded.validate()
            try session.require(rule.requiredState, for: request)
            switch try decoded.handle(session) {
            case .done:
                if rule.reply == .whenLogShmfdNegotiated && session.hasProtocolFeature(.logShmfd) {
                    send(VhostUserMessage.reply(to: message.header.request, payload: []))
                } else {
                    acknowledge(message, success: true)
                }
            case .reply(let payload):
                send(VhostUserMessage.reply(to: message.header.request, payload: payload))
            }
        } catch {
            decoded.closeTakenDescriptors()
            refuse(message, error, reply: rule.reply)
        }
        if rule.changesRings && !isClosed { publicationPending = true }
    }

    func publishIfPending() {
        guard publicationPending else { return }
        publicationPending = false
        if !isClosed { session.publishQueues() }
    }

    /// The rules that need no decoding: support, protocol feature, payload size, fd count.
    /// The fds that depend on the payload (NOFD, one per region) are the payload's to check.
    private func check(_ message: VhostUserMessage, _ request: VhostUserRequest, _ rule: VhostUserMessageRule) throws(VhostUserProtocolError) {
        guard rule.supported else { throw .unsupportedRequest(request) }
        if let feature = rule.requiredProtocolFeature, !session.hasProtocolFeature(feature) {
            throw .protocolFeatureRequired(request, feature.name)
        }
        let size = message.payload.count
        switch rule.payload {
        case .exact(let expected) where size != expected:
            throw .wrongPayloadSize(request, size: size, expected: "\(expected)")
        case .variable(let range) where !range.contains(size):
            throw .wrongPayloadSize(request, size: size, expected: "\(range.lowerBound)...\(range.upperBound)")
        default:
            break
        }
        let fdCount = message.descriptors.count
        if message.descriptorsTruncated || fdCount > VhostUserLimits.maxDescriptorsPerMessage {
            throw .tooManyDescriptors(request)
        }
        switch rule.descriptors {
        case .none where fdCount > 0:
            throw .unexpectedDescriptors(request, count: fdCount)
        case .exactlyOne where fdCount == 0:
            throw .missingDescriptor(request)
        case .exactlyOne where fdCount > 1, .optionalUnused where fdCount > 1:
            throw .unexpectedDescriptors(request, count: fdCount)
        default:
            break
        }
    }

    // MARK: Replies

    /// REPLY_ACK (vhost-user.rst "REPLY_ACK"): a u64, 0 for success, when asked for and negotiated.
    private func acknowledge(_ message: VhostUserMessage, success: Bool) {
        guard message.header.needsReply, session.hasProtocolFeature(.replyAck) else { return }
        send(VhostUserMessage.reply(to: message.header.request, payload: VhostUserMessage.u64Payload(success ? 0 : 1)))
    }

    private func refuse(_ message: VhostUserMessage, _ error: VhostUserProtocolError, reply: VhostUserMessageRule.Reply) {
        message.closeDescriptors()
        if replaying {
            if replayFailure == nil { replayFailure = error }
            return
        }
        device.refusedRequests += 1
        device.lastError = error.description
        let expectsPayloadReply = reply == .always || (reply == .whenLogShmfdNegotiated && session.hasProtocolFeature(.logShmfd))
        if expectsPayloadReply {
            // The front-end waits for an answer we cannot give: end the session rather
            // than leave it hanging or hand it a made-up value.
            close(reason: error)
            return
        }
        session.report(error, closing: false)
        acknowledge(message, success: false)
    }

    /// Sends a whole reply without blocking. A reply that does not fit in the socket buffer
    /// means the front-end stopped reading: the session ends.
    private func send(_ bytes: [UInt8]) {
        guard !isClosed, !replaying else { return }
        do {
            let sent = try UnixSocket.send(socket, bytes: bytes)
            if sent != bytes.count { close(reason: .replyWouldBlock) }
        } catch {
            close(reason: error.wouldBlock ? .replyWouldBlock : .socketError(error.description))
        }
    }
}
