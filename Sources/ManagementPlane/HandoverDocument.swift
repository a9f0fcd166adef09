import Dataplane
import PortService

/// The state a running daemon hands to the one taking over (`vhost-switchd --takeover`), sent
/// as JSON (`HandoverDocumentEncoder`/`Decoder`) next to the fds it names by index. Versioned:
/// a binary reads its own version and the previous one (`HandoverDocumentDecoder.acceptedVersions`).
public struct HandoverDocument: Equatable, Sendable {
    /// 1: the first format.
    public static let currentVersion = 1

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
    /// The ports with their vhost-user devices, and the learned MACs: what `PortService`
    /// hands over and adopts (`PortHandover`).
    public var ports: [PortHandover.Port]
    /// Saved ports that could not be re-created yet (`PendingRestore`): restored after the commit.
    public var pendingPorts: [PortSpec]
    public var macTable: [PortHandover.MacEntry]

    public init(version: Int = HandoverDocument.currentVersion, descriptorCount: Int, eventSequence: UInt64,
                quiescedAtNanoseconds: UInt64, api: APIListeners, ports: [PortHandover.Port], pendingPorts: [PortSpec] = [],
                macTable: [PortHandover.MacEntry]) {
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
