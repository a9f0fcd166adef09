/// virtio-net feature bits (VIRTIO 1.1 section 5.1.3, and the reserved transport bits of
/// section 6) plus the vhost-user bits that share the same word (LOG_ALL, PROTOCOL_FEATURES).
public enum VirtioNetFeature: Int, FeatureBit {
    case csum = 0
    case guestCsum = 1
    case ctrlGuestOffloads = 2
    case mtu = 3
    case mac = 5
    case guestTso4 = 7
    case guestTso6 = 8
    case guestEcn = 9
    case guestUfo = 10
    case hostTso4 = 11
    case hostTso6 = 12
    case hostEcn = 13
    case hostUfo = 14
    case mrgRxbuf = 15
    case status = 16
    case ctrlVq = 17
    case ctrlRx = 18
    case ctrlVlan = 19
    case guestAnnounce = 21
    case mq = 22
    case ctrlMacAddr = 23
    case notifyOnEmpty = 24
    case logAll = 26
    case anyLayout = 27
    case indirectDesc = 28
    case eventIdx = 29
    case protocolFeatures = 30
    case version1 = 32
    case accessPlatform = 33
    case ringPacked = 34
    case inOrder = 35

    /// The name Linux and DPDK use (without the VIRTIO_NET_F_ / VIRTIO_F_ prefix), lowercase.
    public var name: String {
        switch self {
        case .csum: "csum"
        case .guestCsum: "guest_csum"
        case .ctrlGuestOffloads: "ctrl_guest_offloads"
        case .mtu: "mtu"
        case .mac: "mac"
        case .guestTso4: "guest_tso4"
        case .guestTso6: "guest_tso6"
        case .guestEcn: "guest_ecn"
        case .guestUfo: "guest_ufo"
        case .hostTso4: "host_tso4"
        case .hostTso6: "host_tso6"
        case .hostEcn: "host_ecn"
        case .hostUfo: "host_ufo"
        case .mrgRxbuf: "mrg_rxbuf"
        case .status: "status"
        case .ctrlVq: "ctrl_vq"
        case .ctrlRx: "ctrl_rx"
        case .ctrlVlan: "ctrl_vlan"
        case .guestAnnounce: "guest_announce"
        case .mq: "mq"
        case .ctrlMacAddr: "ctrl_mac_addr"
        case .notifyOnEmpty: "notify_on_empty"
        case .logAll: "log_all"
        case .anyLayout: "any_layout"
        case .indirectDesc: "indirect_desc"
        case .eventIdx: "event_idx"
        case .protocolFeatures: "protocol_features"
        case .version1: "version_1"
        case .accessPlatform: "access_platform"
        case .ringPacked: "ring_packed"
        case .inOrder: "in_order"
        }
    }
}

/// Feature masks as lists of names and back, for the management plane.
public enum FeatureNames {
    /// Every set bit, lowest first; bits without a name appear as "bit_NN".
    public static func names(of mask: UInt64) -> [String] {
        var result: [String] = []
        for bit in 0..<64 where mask & (1 << UInt64(bit)) != 0 {
            if let feature = VirtioNetFeature(rawValue: bit) {
                result.append(feature.name)
            } else {
                result.append(bit < 10 ? "bit_0\(bit)" : "bit_\(bit)")
            }
        }
        return result
    }

    /// The bit number for a feature name, "bit_NN" or a decimal bit number (0-63);
    /// case-insensitive; nil for anything else.
    public static func bit(named name: String) -> Int? {
        let lowered = name.lowercased()
        if let feature = VirtioNetFeature(name: lowered) { return feature.rawValue }
        var digits = Substring(lowered)
        if digits.hasPrefix("bit_") { digits = digits.dropFirst(4) }
        guard !digits.isEmpty, digits.count <= 2, digits.allSatisfy({ $0.isASCII && $0.isNumber }),
              let bit = Int(digits), bit < 64 else { return nil }
        return bit
    }

    /// A name that is no feature, no "bit_NN" and no bit number.
    public struct UnknownName: Error, Equatable {
        public let name: String
    }

    /// The mask for a list of names (`bit(named:)` each); throws the first unknown one.
    public static func mask(of names: [String]) throws(UnknownName) -> UInt64 {
        var mask: UInt64 = 0
        for name in names {
            guard let bit = bit(named: name) else { throw UnknownName(name: name) }
            mask |= 1 << UInt64(bit)
        }
        return mask
    }
}
