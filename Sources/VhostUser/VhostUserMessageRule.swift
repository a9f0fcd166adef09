/// What the dispatcher checks before a handler runs, one row per request: the vhost-user
/// equivalent of DPDK's `vhost_message_handlers` table. Handlers only see messages whose
/// payload size, file descriptors, vring index and required protocol feature were checked.
public struct VhostUserMessageRule: Sendable {
    public enum Payload: Sendable, Equatable {
        /// Exactly this many bytes.
        case exact(Int)
        /// A size in this range; the handler validates the content (SET_MEM_TABLE's region count).
        case variable(ClosedRange<Int>)
    }

    public enum Descriptors: Sendable, Equatable {
        /// None allowed: any that arrive are closed and the request refused.
        case none
        case exactlyOne
        /// One, unless bit 8 (NOFD) of the u64 payload is set, then none (SET_VRING_KICK/CALL/ERR).
        case oneUnlessNoFdFlag
        /// One per memory region named in the payload (SET_MEM_TABLE).
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

    /// Where the vring index sits, so the dispatcher checks it once for every request.
    public enum VringIndex: Sendable, Equatable {
        case none
        /// `struct vhost_vring_state` / `vhost_vring_addr`: a u32 index at offset 0.
        case stateIndex
        /// SET_VRING_KICK/CALL/ERR: u64, bits 0-7 the index, bit 8 NOFD, the rest must be zero.
        case fileIndex
    }

    public var supported: Bool
    public var payload: Payload
    public var descriptors: Descriptors
    public var reply: Reply
    /// The request may invalidate a published ring: queues are withdrawn from the dataplane
    /// before the handler runs and republished (when ready) after it.
    public var changesRings: Bool
    public var vringIndex: VringIndex
    public var requiredProtocolFeature: VhostUserProtocolFeature?

    init(supported: Bool = true, payload: Payload, descriptors: Descriptors = .none, reply: Reply = .ackOnly,
         changesRings: Bool = false, vringIndex: VringIndex = .none, requires: VhostUserProtocolFeature? = nil) {
        self.supported = supported
        self.payload = payload
        self.descriptors = descriptors
        self.reply = reply
        self.changesRings = changesRings
        self.vringIndex = vringIndex
        self.requiredProtocolFeature = requires
    }

    public static let vringStateSize = 8
    public static let vringAddressSize = 40
    public static let memoryRegionSize = 32
    /// u32 nregions, u32 padding, then the regions.
    public static let memoryTableHeaderSize = 8
    public static let maxMemoryTableRegions = 8
    /// u64 padding + one region (VhostUserMemRegMsg).
    public static let singleRegionSize = 8 + memoryRegionSize
    public static let logBaseSize = 16

    /// The table. Sizes follow vhost-user.rst "Message types" and what QEMU and DPDK send.
    public static func rule(for request: VhostUserRequest) -> VhostUserMessageRule {
        let unsupported = VhostUserMessageRule(supported: false, payload: .variable(0...VhostUserHeader.maxPayloadSize), descriptors: .anyUnused)
        switch request {
        case .getFeatures: return .init(payload: .exact(0), reply: .always)
        case .setFeatures: return .init(payload: .exact(8), changesRings: true)
        case .setOwner: return .init(payload: .exact(0))
        case .resetOwner: return .init(payload: .exact(0), changesRings: true)
        case .setMemTable:
            return .init(payload: .variable(memoryTableHeaderSize...(memoryTableHeaderSize + maxMemoryTableRegions * memoryRegionSize)),
                         descriptors: .onePerRegion, changesRings: true)
        case .setLogBase: return .init(payload: .exact(logBaseSize), descriptors: .exactlyOne, reply: .whenLogShmfdNegotiated, changesRings: true)
        case .setLogFd: return .init(payload: .variable(0...8), descriptors: .exactlyOne)
        case .setVringNum: return .init(payload: .exact(vringStateSize), changesRings: true, vringIndex: .stateIndex)
        case .setVringAddr: return .init(payload: .exact(vringAddressSize), changesRings: true, vringIndex: .stateIndex)
        case .setVringBase: return .init(payload: .exact(vringStateSize), changesRings: true, vringIndex: .stateIndex)
        case .getVringBase: return .init(payload: .exact(vringStateSize), reply: .always, changesRings: true, vringIndex: .stateIndex)
        case .setVringKick: return .init(payload: .exact(8), descriptors: .oneUnlessNoFdFlag, changesRings: true, vringIndex: .fileIndex)
        case .setVringCall: return .init(payload: .exact(8), descriptors: .oneUnlessNoFdFlag, changesRings: true, vringIndex: .fileIndex)
        case .setVringErr: return .init(payload: .exact(8), descriptors: .oneUnlessNoFdFlag, vringIndex: .fileIndex)
        case .getProtocolFeatures: return .init(payload: .exact(0), reply: .always)
        case .setProtocolFeatures: return .init(payload: .exact(8))
        case .getQueueNum: return .init(payload: .exact(0), reply: .always)
        case .setVringEnable: return .init(payload: .exact(vringStateSize), changesRings: true, vringIndex: .stateIndex)
        case .sendRarp: return .init(payload: .exact(8), requires: .rarp)
        case .netSetMtu: return .init(payload: .exact(8), requires: .mtu)
        case .resetDevice: return .init(payload: .exact(0), changesRings: true, requires: .resetDevice)
        case .getMaxMemSlots: return .init(payload: .exact(0), reply: .always, requires: .configureMemSlots)
        case .addMemReg: return .init(payload: .exact(singleRegionSize), descriptors: .exactlyOne, changesRings: true, requires: .configureMemSlots)
        case .remMemReg: return .init(payload: .exact(singleRegionSize), descriptors: .optionalUnused, changesRings: true, requires: .configureMemSlots)
        case .setStatus: return .init(payload: .exact(8), changesRings: true, requires: .status)
        case .getStatus: return .init(payload: .exact(0), reply: .always, requires: .status)
        case .setBackendRequestFd, .iotlbMessage, .setVringEndian, .getConfig, .setConfig, .createCryptoSession,
             .closeCryptoSession, .postcopyAdvise, .postcopyListen, .postcopyEnd, .getInflightFd, .setInflightFd,
             .gpuSetSocket, .vringKick, .getSharedObject, .setDeviceStateFd, .checkDeviceState:
            return unsupported
        }
    }
}
