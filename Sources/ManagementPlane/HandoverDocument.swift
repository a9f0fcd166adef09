import Dataplane
import VhostUser

/// The state a running daemon hands to the one taking over (`vhost-switchd --takeover`), sent
/// as JSON (`HandoverDocumentEncoder`/`Decoder`) next to the fds it names by index. Versioned:
/// a binary reads its own version and the previous one (`HandoverDocumentDecoder.acceptedVersions`).
public struct HandoverDocument: Equatable, Sendable {
    /// 1: the first format.
    public static let currentVersion = 1

    public struct Port: Equatable, Sendable {
        public var spec: PortSpec
        /// The vhost-user device (nil for a kernel port: the new process opens its own socket).
        public var device: VhostUserDeviceExport?

        public init(spec: PortSpec, device: VhostUserDeviceExport? = nil) {
            self.spec = spec
            self.device = device
        }
    }

    public struct MacEntry: Equatable, Sendable {
        public var mac: UInt64
        public var segment: Int
        public var port: String

        public init(mac: UInt64, segment: Int, port: String) {
            self.mac = mac
            self.segment = segment
            self.port = port
        }
    }

    /// The API's listeners, by fd index.
    public struct APIListeners: Equatable, Sendable {
        public var unix: Int?
        public var tcp: Int?
        public var metrics: Int?

        public init(unix: Int? = nil, tcp: Int? = nil, metrics: Int? = nil) {
            self.unix = unix
            self.tcp = tcp
            self.metrics = metrics
        }
    }

    public var version: Int
    /// How many fds came with the document; every index is below it.
    public var descriptorCount: Int
    /// The last event id the old daemon gave out: the new one continues after it.
    public var eventSequence: UInt64
    /// When the old daemon's queues were withdrawn (CLOCK_MONOTONIC, ns: same host): the
    /// start of the forwarding gap.
    public var quiescedAtNanoseconds: UInt64
    public var api: APIListeners
    public var ports: [Port]
    /// Saved ports that could not be re-created yet (`PendingRestore`): restored after the commit.
    public var pendingPorts: [PortSpec]
    public var macTable: [MacEntry]

    public init(version: Int = HandoverDocument.currentVersion, descriptorCount: Int, eventSequence: UInt64,
                quiescedAtNanoseconds: UInt64, api: APIListeners, ports: [Port], pendingPorts: [PortSpec] = [], macTable: [MacEntry]) {
        self.version = version
        self.descriptorCount = descriptorCount
        self.eventSequence = eventSequence
        self.quiescedAtNanoseconds = quiescedAtNanoseconds
        self.api = api
        self.ports = ports
        self.pendingPorts = pendingPorts
        self.macTable = macTable
    }
}
