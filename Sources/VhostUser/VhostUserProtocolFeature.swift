import Virtio

/// The vhost-user protocol feature bits this back-end implements (vhost-user.rst
/// "Protocol features"). Negotiated with GET/SET_PROTOCOL_FEATURES.
public enum VhostUserProtocolFeature: Int, FeatureBit {
    case mq = 0
    case logShmfd = 1
    case rarp = 2
    case replyAck = 3
    case mtu = 4
    case resetDevice = 13
    case configureMemSlots = 15
    case status = 16

    public var name: String {
        switch self {
        case .mq: "mq"
        case .logShmfd: "log_shmfd"
        case .rarp: "rarp"
        case .replyAck: "reply_ack"
        case .mtu: "mtu"
        case .resetDevice: "reset_device"
        case .configureMemSlots: "configure_mem_slots"
        case .status: "status"
        }
    }

    /// Every bit above, the set offered in GET_PROTOCOL_FEATURES.
    public static let supportedMask: UInt64 = allCases.reduce(0) { $0 | $1.mask }
}
