/// The vhost-user protocol as this back-end speaks it: one row per supported request with
/// its payload type, its rules and its handler, as DPDK's `vhost_message_handlers`
/// (lib/vhost/vhost_user.c). `VhostUserConnection` enforces the rules and runs the handler
/// with the decoded payload; `VhostUserSession` holds what the handlers change. A request
/// without a row (the ones vhost-user.rst defines for other devices, or for features not
/// offered here) is refused as unsupported. Sizes and layouts follow vhost-user.rst
/// "Message types" and what QEMU and DPDK send.
enum VhostUserRequestTable {
    private typealias Session = VhostUserSession

    static let handlers: [VhostUserRequestHandler] = [
        .init(.getFeatures, EmptyPayload.self, reply: .always, Session.getFeatures),
        .init(.setFeatures, FeatureBits.self, changesRings: true, Session.setFeatures),
        .init(.setOwner, EmptyPayload.self, Session.setOwner),
        .init(.resetOwner, EmptyPayload.self, changesRings: true, Session.reset),
        .init(.setMemTable, MemoryTable.self, descriptors: .onePerRegion, changesRings: true, Session.setMemTable),
        .init(.setLogBase, LogBase.self, descriptors: .exactlyOne, reply: .whenLogShmfdNegotiated, changesRings: true,
              state: .memoryMapped, Session.setLogBase),
        .init(.setLogFd, LogFdPayload.self, descriptors: .exactlyOne, Session.setLogFd),
        .init(.setVringNum, VringNum.self, changesRings: true, Session.setVringNum),
        .init(.setVringAddr, VringAddress.self, changesRings: true, state: .memoryMapped, Session.setVringAddr),
        .init(.setVringBase, VringState.self, changesRings: true, Session.setVringBase),
        .init(.getVringBase, VringState.self, reply: .always, changesRings: true, Session.getVringBase),
        .init(.setVringKick, VringFile.self, descriptors: .oneUnlessNoFdFlag, changesRings: true, Session.setVringKick),
        .init(.setVringCall, VringFile.self, descriptors: .oneUnlessNoFdFlag, changesRings: true, Session.setVringCall),
        .init(.setVringErr, VringFile.self, descriptors: .oneUnlessNoFdFlag, Session.setVringErr),
        .init(.getProtocolFeatures, EmptyPayload.self, reply: .always, state: .protocolFeaturesOffered, Session.getProtocolFeatures),
        .init(.setProtocolFeatures, FeatureBits.self, state: .protocolFeaturesOffered, Session.setProtocolFeatures),
        .init(.getQueueNum, EmptyPayload.self, reply: .always, Session.getQueueNum),
        .init(.setVringEnable, VringEnable.self, changesRings: true, Session.setVringEnable),
        .init(.sendRarp, RarpMac.self, budgeted: true, requires: .rarp, Session.sendRarp),
        .init(.netSetMtu, MTU.self, requires: .mtu, Session.setMTU),
        .init(.resetDevice, EmptyPayload.self, changesRings: true, requires: .resetDevice, Session.reset),
        .init(.getMaxMemSlots, EmptyPayload.self, reply: .always, requires: .configureMemSlots, Session.getMaxMemSlots),
        .init(.addMemReg, MemoryRegionMessage.self, descriptors: .exactlyOne, changesRings: true, requires: .configureMemSlots,
              Session.addMemoryRegion),
        .init(.remMemReg, MemoryRegionMessage.self, descriptors: .optionalUnused, changesRings: true, requires: .configureMemSlots,
              Session.removeMemoryRegion),
        .init(.setStatus, DeviceStatus.self, changesRings: true, requires: .status, Session.setStatus),
        .init(.getStatus, EmptyPayload.self, reply: .always, requires: .status, Session.getStatus),
    ]

    private static let byRequest: [VhostUserRequest: VhostUserRequestHandler] = {
        var table: [VhostUserRequest: VhostUserRequestHandler] = [:]
        for handler in handlers {
            precondition(table[handler.request] == nil, "two rows for \(handler.request)")
            table[handler.request] = handler
        }
        for request in VhostUserRequest.allCases where table[request] == nil {
            table[request] = .unsupported(request)
        }
        return table
    }()

    static func handler(for request: VhostUserRequest) -> VhostUserRequestHandler {
        byRequest[request] ?? .unsupported(request)
    }
}

/// One row of the table.
struct VhostUserRequestHandler: Sendable {
    let request: VhostUserRequest
    let rule: VhostUserMessageRule
    /// Decodes the payload (`VhostUserPayload.init(decoding:)`) of a message whose rules
    /// were checked, and binds it to the handler.
    let decode: @Sendable (inout VhostUserMessage, _ vringCount: Int) throws(VhostUserProtocolError) -> VhostUserDecodedRequest

    /// A row: the payload type gives the size rule, the rest is the request's own.
    init<Payload: VhostUserPayload>(
        _ request: VhostUserRequest, _ payload: Payload.Type, supported: Bool = true,
        descriptors: VhostUserMessageRule.Descriptors = .none, reply: VhostUserMessageRule.Reply = .ackOnly,
        changesRings: Bool = false, budgeted: Bool? = nil, requires feature: VhostUserProtocolFeature? = nil,
        state: VhostUserSessionState = [],
        _ handler: @escaping @Sendable (VhostUserSession) -> (Payload) throws(VhostUserProtocolError) -> VhostUserResponse
    ) {
        self.request = request
        rule = VhostUserMessageRule(supported: supported, payload: Payload.size, descriptors: descriptors, reply: reply,
                                    changesRings: changesRings, budgeted: budgeted, requires: feature, state: state)
        decode = { message, vringCount throws(VhostUserProtocolError) in
            var decoder = VhostUserPayloadDecoder(message, request: request, vringCount: vringCount)
            let payload = try Payload(decoding: &decoder)
            message.descriptors = decoder.descriptors
            return VhostUserDecodedRequest(
                validate: { () throws(VhostUserProtocolError) in try payload.validate(for: request) },
                handle: { session throws(VhostUserProtocolError) in try handler(session)(payload) },
                closeTakenDescriptors: { payload.closeTakenDescriptors() })
        }
    }

    /// A request this back-end does not implement: the dispatcher refuses it before decoding
    /// (its payload is skipped, its fds closed).
    static func unsupported(_ request: VhostUserRequest) -> VhostUserRequestHandler {
        VhostUserRequestHandler(request, UnsupportedPayload.self, supported: false, descriptors: .anyUnused, VhostUserSession.refuseUnsupported)
    }
}

/// A request whose payload decoded, bound to its handler: the dispatcher runs the two steps
/// in order, and closes what the payload took when the request is refused.
struct VhostUserDecodedRequest {
    let validate: () throws(VhostUserProtocolError) -> Void
    let handle: (VhostUserSession) throws(VhostUserProtocolError) -> VhostUserResponse
    let closeTakenDescriptors: () -> Void
}

/// What a handler that did not refuse answers.
enum VhostUserResponse {
    /// Done: a REPLY_ACK success when asked for (SET_LOG_BASE: its empty reply with LOG_SHMFD).
    case done
    /// A reply with this payload (the GET_* requests).
    case reply([UInt8])

    static func u64(_ value: UInt64) -> VhostUserResponse { .reply(VhostUserMessage.u64Payload(value)) }
}
