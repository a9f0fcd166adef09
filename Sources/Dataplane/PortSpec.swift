import VhostSystem

/// A port as users declare it (config file, REST API, persisted state): what to create,
/// not its run-time state.
public struct PortSpec: Equatable, Sendable {
    public enum SocketMode: String, Sendable, CaseIterable { case server, client }

    public struct VhostUser: Equatable, Sendable {
        /// Relative to the socket directory (an absolute path must lie inside it).
        public var socketPath: String
        public var mode: SocketMode = .server
        public var owner: String?
        public var group: String?
        public var permissions: UInt32?
        public var queuePairs: Int = 1
        public var mtu: Int?
        public var mac: String?
        public var enableFeatures: [String] = []
        public var disableFeatures: [String] = []
        /// A whole offered mask (PUT /features); wins over enable/disable when set.
        public var featureMask: UInt64?

        public init(socketPath: String, mode: SocketMode = .server) {
            self.socketPath = socketPath
            self.mode = mode
        }
    }

    /// An AF_XDP port: queues queue..<queue + queues of a host interface (a socket each,
    /// one UMEM), the XDP program attached in `mode`.
    public struct AfXdp: Equatable, Sendable {
        public var interface: String
        public var queue: Int = 0
        public var queues: Int = 1
        public var mode: XDPSocket.AttachMode = .auto

        public init(interface: String, queue: Int = 0, queues: Int = 1, mode: XDPSocket.AttachMode = .auto) {
            self.interface = interface
            self.queue = queue
            self.queues = queues
            self.mode = mode
        }

        /// The first queue id the API accepts (the XSKMAP has queue + queues slots).
        public static let queueRange = 0...255
        public static let queueCountRange = 1...64
    }

    public enum Kind: Equatable, Sendable {
        case vhostUser(VhostUser)
        case afPacket(interface: String)
        case afXdp(AfXdp)

        public var typeName: String {
            switch self {
            case .vhostUser: "vhost-user"
            case .afPacket: "af-packet"
            case .afXdp: "af-xdp"
            }
        }

        /// The host interface of a kernel port (af-packet, af-xdp); nil for vhost-user.
        public var kernelInterface: String? {
            switch self {
            case .vhostUser: nil
            case .afPacket(let interface): interface
            case .afXdp(let xdp): xdp.interface
            }
        }
    }

    public var name: String
    public var kind: Kind
    /// Segment, anti-spoofing and limits; changeable live.
    public var policy = PortPolicy()

    public init(name: String, kind: Kind) {
        self.name = name
        self.kind = kind
    }

    public static let maxNameLength = 64
    /// As DPDK and VPP: VhostUserDevice.maxQueuePairsLimit (GET_QUEUE_NUM reports the port's own).
    public static let maxQueuePairs = 128
    /// The MTU a vhost-user port may offer: IPv4's minimum to the largest a 16-bit length says.
    public static let mtuRange = 68...65535
    /// IFNAMSIZ less the terminating NUL.
    public static let maxInterfaceNameLength = 15

    /// The port's receive queues as poll threads are given them: a vhost-user port's queue
    /// pairs, an af-packet port's sockets (one per poll thread), an af-xdp port's one (its
    /// sockets are served together).
    public func receiveQueues(pollThreads: Int) -> Int {
        switch kind {
        case .vhostUser(let vhost): vhost.queuePairs
        case .afPacket: max(1, pollThreads)
        case .afXdp: 1
        }
    }

    /// The first rule the policy breaks for this port on a daemon with `pollThreads` poll
    /// threads (`PortPolicy.problem`, then `rxq_affinity` against the port's queues and the
    /// threads); nil when valid.
    public func policyProblem(pollThreads: Int) -> String? {
        if let problem = policy.problem { return problem }
        let queues = receiveQueues(pollThreads: pollThreads)
        for (queue, thread) in policy.rxqAffinity.sorted(by: { $0.key < $1.key }) {
            if queue >= queues { return "rxq_affinity queue \(queue) is not below the port's \(queues) queues" }
            if thread >= pollThreads { return "rxq_affinity thread \(thread) is not below the \(pollThreads) poll threads (--pmd-threads)" }
        }
        return nil
    }

    /// Names are used in logs, metrics labels and URLs: keep them plain.
    public static func validateName(_ name: String) -> String? {
        if name.isEmpty { return "name must not be empty" }
        if name.utf8.count > maxNameLength { return "name longer than \(maxNameLength) bytes" }
        if name.hasPrefix(".") || name.hasPrefix("-") { return "name must not start with '.' or '-'" }
        let allowed = name.utf8.allSatisfy { byte in
            (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                || byte == 0x2D || byte == 0x2E || byte == 0x5F
        }
        return allowed ? nil : "name may contain only letters, digits, '.', '-' and '_'"
    }

    /// A kernel port's host interface: the kernel's dev_valid_name (1-15 bytes, not "." or
    /// "..", no '/', ':' or white space), in printable ASCII only, as the name reaches logs
    /// and metric labels.
    public static func validateInterfaceName(_ name: String) -> String? {
        let bytes = name.utf8
        let valid = (1...maxInterfaceNameLength).contains(bytes.count) && name != "." && name != ".."
            && bytes.allSatisfy { $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "/") && $0 != UInt8(ascii: ":") }
        return valid ? nil
            : "interface must be a Linux interface name: 1-\(maxInterfaceNameLength) printable ASCII characters, not \".\" or \"..\", without '/', ':' or spaces"
    }
}
