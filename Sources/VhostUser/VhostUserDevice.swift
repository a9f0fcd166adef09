import Logging
import Synchronization
import VhostSystem
import Virtio

/// One vhost-user port. It outlives its sessions: a front-end connects, configures rings,
/// disconnects, and the next one starts afresh on the same device. Everything except the
/// offered feature mask is touched only on the control thread (the control loop's thread,
/// or the thread driving a `VhostUserConnection` directly in tests).
public final class VhostUserDevice: @unchecked Sendable {
    // MARK: Feature bits (virtio-net, VIRTIO 1.x 5.1.3)

    static func bit(_ n: UInt64) -> UInt64 { 1 << n }
    static let featureMTU = bit(3), featureMAC = bit(5), featureMrgRxbuf = bit(15), featureStatus = bit(16)
    static let featureCtrlVq = bit(17), featureGuestAnnounce = bit(21), featureMQ = bit(22)
    static let featureLogAll = bit(26), featureAnyLayout = bit(27), featureIndirectDesc = bit(28)
    static let featureEventIdx = bit(29), featureProtocolFeatures = bit(30), featureVersion1 = bit(32)
    static let featureRingPacked = bit(34), featureInOrder = bit(35)

    /// Checksum, TCP segmentation (with ECN) and UDP fragmentation offloads, both
    /// directions: headers pass between ports that negotiated them, and the forwarder
    /// completes checksums, segments and fragments super-frames for ports that did not.
    static let offloadFeatures: UInt64 = bit(0) | bit(1) | bit(7) | bit(8) | bit(9) | bit(10) | bit(11) | bit(12)
        | bit(13) | bit(14)
    /// What the implementation handles: the most a socket may offer. IN_ORDER
    /// holds for both ring layouts: every chain completes, in ring order, in the burst that takes it.
    public static let supportedFeatures: UInt64 = featureVersion1 | featureAnyLayout | featureIndirectDesc
        | featureEventIdx | featureMrgRxbuf | featureMQ | featureCtrlVq | featureMTU | featureMAC
        | featureGuestAnnounce | featureLogAll | featureProtocolFeatures | featureStatus
        | featureRingPacked | featureInOrder | offloadFeatures
    /// What a new socket offers. CTRL_VQ is handled by the front-end itself (QEMU and DPDK
    /// virtio-user never hand the control queue to the back-end).
    public static let defaultOfferedFeatures: UInt64 = supportedFeatures
    /// The virtio feature bit LOG_ALL (26): the only one that may change while rings run.
    public static let logAllFeature: UInt64 = featureLogAll
    public static let protocolFeaturesFeature: UInt64 = featureProtocolFeatures
    public static let ringPackedFeature: UInt64 = featureRingPacked
    public static let maxQueuePairsLimit = 128

    // MARK: Identity

    public let configuration: VhostUserDeviceConfiguration
    public var name: String { configuration.name }
    public let delegate: any VhostUserDeviceDelegate
    let logger: Logger

    private let offered: Mutex<UInt64>

    public init(configuration: VhostUserDeviceConfiguration, delegate: any VhostUserDeviceDelegate,
                logger: Logger = Logger(label: "vhost-user")) throws(VhostUserConfigurationError) {
        guard (1...Self.maxQueuePairsLimit).contains(configuration.maxQueuePairs) else {
            throw .invalidQueuePairs(configuration.maxQueuePairs)
        }
        guard configuration.offeredFeatures & ~Self.supportedFeatures == 0 else {
            throw .unsupportedFeatures(configuration.offeredFeatures & ~Self.supportedFeatures)
        }
        guard !configuration.name.isEmpty else { throw .invalidName(configuration.name) }
        self.configuration = configuration
        self.delegate = delegate
        var logger = logger
        logger[metadataKey: "port"] = "\(configuration.name)"
        self.logger = logger
        self.offered = Mutex(configuration.offeredFeatures)
    }

    // MARK: Offered features (any thread; a session captures the value when it starts)

    public var offeredFeatures: UInt64 { offered.withLock { $0 } }

    public func setOfferedFeatures(_ mask: UInt64) throws(VhostUserConfigurationError) {
        guard mask & ~Self.supportedFeatures == 0 else { throw .unsupportedFeatures(mask & ~Self.supportedFeatures) }
        offered.withLock { $0 = mask }
    }

    // MARK: Control-thread state

    /// The current session, if any. Weak: whoever drives the session (the control loop's
    /// registration, or a test) owns it; the session owns its device.
    public internal(set) weak var connection: VhostUserConnection?
    var endpointState: VhostUserDeviceInfo.ConnectionState = .stopped
    private(set) var publishedQueues: [ActiveQueue] = []
    private(set) var isReady = false
    var sessionCount: UInt64 = 0
    var refusedRequests: UInt64 = 0
    var sessionsClosedOnError: UInt64 = 0
    var lastError: String?
    var sessionErrorLimiter = VhostUserErrorRateLimiter()
    /// Sessions ended because their guest memory faulted or a ring had to be stopped.
    var guestFaults: UInt64 = 0
    /// The control loop's eventfd for `GuestFaultFlag`s of this device's sessions (-1: none,
    /// a test drives the session and calls `closeIfFaulted()` itself).
    var faultNotifyDescriptor: Int32 = -1

    /// Requests refused since the device was added (control thread).
    public var refusedRequestCount: UInt64 { refusedRequests }

    /// Tells the dataplane to stop using every queue of this device. Returns after it did.
    func withdrawQueues() {
        guard !publishedQueues.isEmpty else { return }
        publishedQueues = []
        delegate.deviceQueuesChanged(self, queues: [])
    }

    /// Publishes `queues` (the enabled, started rings) and reports readiness changes.
    func publish(_ queues: [ActiveQueue]?) {
        guard let queues else {
            withdrawQueues()
            isReady = false
            return
        }
        let unchanged = queues.map(\.vringIndex) == publishedQueues.map(\.vringIndex)
            && zip(queues, publishedQueues).allSatisfy { $0.queue === $1.queue }
        if !unchanged {
            if !publishedQueues.isEmpty { withdrawQueues() }
            publishedQueues = queues
            delegate.deviceQueuesChanged(self, queues: queues)
        }
        if !isReady {
            isReady = true
            logger.info("device ready", metadata: ["queues": "\(queues.map(\.vringIndex))"])
            delegate.deviceReady(self)
        }
    }

    /// The session ended or was reset: withdraw, and tell the layers above.
    func sessionEnded(notify: Bool) {
        withdrawQueues()
        let wasReady = isReady
        isReady = false
        if notify || wasReady { delegate.deviceDestroyed(self) }
    }

    // MARK: Snapshot

    /// The device's state now. Call on the control thread (`VhostUserControlLoop.info(of:)`
    /// does that from other threads).
    public func info() -> VhostUserDeviceInfo {
        var state = endpointState
        if connection != nil { state = isReady ? .ready : .connected }
        var info = VhostUserDeviceInfo(
            name: name, socketPath: configuration.socketPath, mode: configuration.mode, state: state,
            offeredFeatures: connection?.sessionOfferedFeatures ?? offeredFeatures,
            negotiatedFeatures: nil, offeredProtocolFeatures: VhostUserProtocolFeature.supportedMask,
            negotiatedProtocolFeatures: nil, mtu: nil, status: 0, maxQueuePairs: configuration.maxQueuePairs,
            activeQueuePairs: 0, memoryRegions: [], dirtyLogging: false, vrings: [],
            sessions: sessionCount, refusedRequests: refusedRequests, sessionsClosedOnError: sessionsClosedOnError,
            lastError: lastError)
        info.guestFaults = guestFaults
        connection?.session.fill(&info)
        return info
    }
}
