/// The rules column of `VhostUserRequestTable`: what the dispatcher (`VhostUserConnection`)
/// checks and does around a request's handler, as DPDK's `vhost_message_handlers` says per
/// request whether it accepts fds and locks the queues.
public struct VhostUserMessageRule: Sendable {
    public enum Payload: Sendable, Equatable {
        /// Exactly this many bytes.
        case exact(Int)
        /// A size in this range; the payload type checks the content (SET_MEM_TABLE's region count).
        case variable(ClosedRange<Int>)
    }

    public enum Descriptors: Sendable, Equatable {
        /// None allowed: any that arrive are closed and the request refused.
        case none
        case exactlyOne
        /// One, unless bit 8 (NOFD) of the u64 payload is set, then none (SET_VRING_KICK/CALL/ERR;
        /// checked by the payload type, `VringFile`).
        case oneUnlessNoFdFlag
        /// One per memory region named in the payload (SET_MEM_TABLE; checked by `MemoryTable`).
        case onePerRegion
        /// Zero or one, closed unused (REM_MEM_REG: older front-ends attach the region's fd).
        case optionalUnused
        /// Any number: the request is refused anyway, the fds are closed.
        case anyUnused
    }

    public enum Reply: Sendable, Equatable {
        /// Only the REPLY_ACK u64 when need_reply is set and REPLY_ACK was negotiated.
        case ackOnly
        /// Always a reply with a payload (GET_*); a refusal ends the session, because the
        /// front-end waits for an answer that cannot be given.
        case always
        /// SET_LOG_BASE: an empty-payload reply when LOG_SHMFD was negotiated.
        case whenLogShmfdNegotiated
    }

    public var supported: Bool
    /// Taken from the row's payload type (`VhostUserPayload.size`).
    public var payload: Payload
    public var descriptors: Descriptors
    public var reply: Reply
    /// The request may invalidate a published ring: queues are withdrawn from the dataplane
    /// before the handler runs and republished (when ready) once the read batch is done.
    public var changesRings: Bool
    /// Counted in the session's `RingChangeBudget`: every ring-changing request (each makes
    /// every poll thread pause) and SEND_RARP (each injects a frame).
    public var budgeted: Bool
    public var requiredProtocolFeature: VhostUserProtocolFeature?
    /// The session states the request is allowed in: what must hold before its handler runs.
    public var requiredState: VhostUserSessionState

    init(supported: Bool = true, payload: Payload, descriptors: Descriptors = .none, reply: Reply = .ackOnly,
         changesRings: Bool = false, budgeted: Bool? = nil, requires feature: VhostUserProtocolFeature? = nil,
         state: VhostUserSessionState = []) {
        self.supported = supported
        self.payload = payload
        self.descriptors = descriptors
        self.reply = reply
        self.changesRings = changesRings
        self.budgeted = budgeted ?? changesRings
        self.requiredProtocolFeature = feature
        self.requiredState = state
    }

    /// The row of `request` (requests without one are refused as unsupported).
    public static func rule(for request: VhostUserRequest) -> VhostUserMessageRule {
        VhostUserRequestTable.handler(for: request).rule
    }
}

/// Conditions on a session that a request may need (`VhostUserMessageRule.requiredState`).
public struct VhostUserSessionState: OptionSet, Sendable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// Guest memory is mapped (SET_MEM_TABLE or ADD_MEM_REG): ring addresses and the dirty
    /// log are checked against it.
    public static let memoryMapped = VhostUserSessionState(rawValue: 1 << 0)
    /// The session's offered features include PROTOCOL_FEATURES (bit 30): only then do
    /// GET/SET_PROTOCOL_FEATURES mean anything.
    public static let protocolFeaturesOffered = VhostUserSessionState(rawValue: 1 << 1)

    /// Why `request` is refused in a session that lacks `self` (the first missing condition).
    func refusal(_ request: VhostUserRequest) -> VhostUserProtocolError? {
        if contains(.protocolFeaturesOffered) { return .invalidPayload(request, "PROTOCOL_FEATURES (bit 30) was not offered") }
        if contains(.memoryMapped) { return .noMemoryTable(request) }
        return nil
    }
}
