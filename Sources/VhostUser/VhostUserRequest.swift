/// Every front-end to back-end request of vhost-user.rst ("Front-end message types").
/// `VhostUserRequest(rawValue:)` is nil for 0, for unknown codes and for anything above the
/// highest known one, so an unknown code can never reach a handler.
public enum VhostUserRequest: UInt32, CaseIterable, Sendable, CustomStringConvertible {
    case getFeatures = 1
    case setFeatures = 2
    case setOwner = 3
    case resetOwner = 4
    case setMemTable = 5
    case setLogBase = 6
    case setLogFd = 7
    case setVringNum = 8
    case setVringAddr = 9
    case setVringBase = 10
    case getVringBase = 11
    case setVringKick = 12
    case setVringCall = 13
    case setVringErr = 14
    case getProtocolFeatures = 15
    case setProtocolFeatures = 16
    case getQueueNum = 17
    case setVringEnable = 18
    case sendRarp = 19
    case netSetMtu = 20
    case setBackendRequestFd = 21
    case iotlbMessage = 22
    case setVringEndian = 23
    case getConfig = 24
    case setConfig = 25
    case createCryptoSession = 26
    case closeCryptoSession = 27
    case postcopyAdvise = 28
    case postcopyListen = 29
    case postcopyEnd = 30
    case getInflightFd = 31
    case setInflightFd = 32
    case gpuSetSocket = 33
    case resetDevice = 34
    case vringKick = 35
    case getMaxMemSlots = 36
    case addMemReg = 37
    case remMemReg = 38
    case setStatus = 39
    case getStatus = 40
    case getSharedObject = 41
    case setDeviceStateFd = 42
    case checkDeviceState = 43

    /// The spec's name, for logs and errors.
    public var description: String {
        switch self {
        case .getFeatures: "GET_FEATURES"
        case .setFeatures: "SET_FEATURES"
        case .setOwner: "SET_OWNER"
        case .resetOwner: "RESET_OWNER"
        case .setMemTable: "SET_MEM_TABLE"
        case .setLogBase: "SET_LOG_BASE"
        case .setLogFd: "SET_LOG_FD"
        case .setVringNum: "SET_VRING_NUM"
        case .setVringAddr: "SET_VRING_ADDR"
        case .setVringBase: "SET_VRING_BASE"
        case .getVringBase: "GET_VRING_BASE"
        case .setVringKick: "SET_VRING_KICK"
        case .setVringCall: "SET_VRING_CALL"
        case .setVringErr: "SET_VRING_ERR"
        case .getProtocolFeatures: "GET_PROTOCOL_FEATURES"
        case .setProtocolFeatures: "SET_PROTOCOL_FEATURES"
        case .getQueueNum: "GET_QUEUE_NUM"
        case .setVringEnable: "SET_VRING_ENABLE"
        case .sendRarp: "SEND_RARP"
        case .netSetMtu: "NET_SET_MTU"
        case .setBackendRequestFd: "SET_BACKEND_REQ_FD"
        case .iotlbMessage: "IOTLB_MSG"
        case .setVringEndian: "SET_VRING_ENDIAN"
        case .getConfig: "GET_CONFIG"
        case .setConfig: "SET_CONFIG"
        case .createCryptoSession: "CREATE_CRYPTO_SESSION"
        case .closeCryptoSession: "CLOSE_CRYPTO_SESSION"
        case .postcopyAdvise: "POSTCOPY_ADVISE"
        case .postcopyListen: "POSTCOPY_LISTEN"
        case .postcopyEnd: "POSTCOPY_END"
        case .getInflightFd: "GET_INFLIGHT_FD"
        case .setInflightFd: "SET_INFLIGHT_FD"
        case .gpuSetSocket: "GPU_SET_SOCKET"
        case .resetDevice: "RESET_DEVICE"
        case .vringKick: "VRING_KICK"
        case .getMaxMemSlots: "GET_MAX_MEM_SLOTS"
        case .addMemReg: "ADD_MEM_REG"
        case .remMemReg: "REM_MEM_REG"
        case .setStatus: "SET_STATUS"
        case .getStatus: "GET_STATUS"
        case .getSharedObject: "GET_SHARED_OBJECT"
        case .setDeviceStateFd: "SET_DEVICE_STATE_FD"
        case .checkDeviceState: "CHECK_DEVICE_STATE"
        }
    }
}

/// The 12-byte message header: three little-endian u32 (vhost-user.rst "Message Specification").
public struct VhostUserHeader: Sendable, Equatable {
    public static let size = 12
    /// Flags bits 0-1: the protocol version, always 1.
    public static let versionMask: UInt32 = 0x3
    public static let version: UInt32 = 0x1
    /// Flags bit 2: this message is a reply.
    public static let replyFlag: UInt32 = 1 << 2
    /// Flags bit 3: the front-end wants a REPLY_ACK u64 (when REPLY_ACK is negotiated).
    public static let needReplyFlag: UInt32 = 1 << 3
    /// The largest payload accepted. The largest message a net back-end handles is
    /// SET_MEM_TABLE with 8 regions (8 + 8 * 32 = 264 bytes); GET_CONFIG/SET_CONFIG (up to
    /// 12 + 256) and other unsupported requests fit too, so their payload can be skipped
    /// and the request refused without losing the framing.
    public static let maxPayloadSize = 4096

    public var request: UInt32
    public var flags: UInt32
    public var size: UInt32

    public init(request: UInt32, flags: UInt32, size: UInt32) {
        self.request = request
        self.flags = flags
        self.size = size
    }

    public var version: UInt32 { flags & Self.versionMask }
    public var isReply: Bool { flags & Self.replyFlag != 0 }
    public var needsReply: Bool { flags & Self.needReplyFlag != 0 }

    /// Decodes the first 12 bytes of `bytes`; nil when there are fewer.
    public init?(decoding bytes: [UInt8]) {
        guard bytes.count >= Self.size else { return nil }
        var reader = LittleEndianReader(bytes)
        guard let request = reader.u32(), let flags = reader.u32(), let size = reader.u32() else { return nil }
        self.init(request: request, flags: flags, size: size)
    }

    public var encoded: [UInt8] {
        var writer = LittleEndianWriter()
        writer.u32(request)
        writer.u32(flags)
        writer.u32(size)
        return writer.bytes
    }

    /// Why a header cannot start a message. A bad header breaks the framing, so the
    /// session ends (the rest of the stream cannot be trusted to be aligned on messages).
    public func framingError() -> VhostUserProtocolError? {
        if version != Self.version { return .badVersion(flags) }
        if isReply { return .replyFlagOnRequest }
        if Int(size) > Self.maxPayloadSize { return .payloadTooLarge(size) }
        return nil
    }
}
