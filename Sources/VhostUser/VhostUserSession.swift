import Logging
import VhostSystem
import Virtio

/// The device state one front-end session builds up (negotiated features, driver status,
/// the memory table, the dirty log, the vrings) and the handlers that change it, one per
/// row of `VhostUserRequestTable`. It knows nothing of sockets or framing: the dispatcher
/// (`VhostUserConnection`) checks each request's rules, decodes its payload and calls the
/// handler with typed, validated values. Handlers are grouped by job: features and device
/// here, memory and dirty log in +Memory, rings in +Rings, publication and the API snapshot
/// in +Publication. Control thread only.
final class VhostUserSession {
    let device: VhostUserDevice
    /// The device's offered features when the session started; fixed for the session.
    let offeredFeatures: UInt64
    var negotiatedFeatures: UInt64?
    var negotiatedProtocolFeatures: UInt64?
    var memory: GuestMemory?
    var memoryRegions: [GuestMemoryRegion] = []
    /// Each region's file (a copy of the fd it was mapped from), in `memoryRegions`' order.
    var memoryFiles: [FileDescriptor] = []
    var dirtyLog: DirtyLog?
    /// SET_LOG_BASE's file (a copy), size and offset, for a hand-over.
    struct DirtyLogSource {
        let file: FileDescriptor
        let size: UInt64
        let offset: UInt64
    }
    var dirtyLogSource: DirtyLogSource?
    let vrings: [VhostUserVring]
    var mtu: Int?
    var status: UInt8 = 0
    var ringsStoppedReported = false
    private var errorLimiter = VhostUserErrorRateLimiter()
    /// Raised by the SIGBUS handler (this session's guest memory or log faulted) or by a
    /// poll thread (one of its rings stopped); every mapping and queue of the session gets it.
    let faultFlag: GuestFaultFlag

    var logger: Logger { device.logger }

    /// `offeredFeatures`: what the front-end negotiated against, when a handed-over session
    /// is adopted (the device's offer may have changed since it started); else the device's.
    init(device: VhostUserDevice, offeredFeatures: UInt64? = nil) {
        self.device = device
        self.offeredFeatures = offeredFeatures ?? device.offeredFeatures
        vrings = (0..<(2 * device.configuration.maxQueuePairs)).map { VhostUserVring(index: $0) }
        faultFlag = GuestFaultFlag(notifyDescriptor: device.faultNotifyDescriptor)
    }

    // MARK: State the dispatcher checks

    func hasProtocolFeature(_ feature: VhostUserProtocolFeature) -> Bool {
        (negotiatedProtocolFeatures ?? 0) & feature.mask != 0
    }

    var state: VhostUserSessionState {
        var state: VhostUserSessionState = []
        if memory != nil { state.insert(.memoryMapped) }
        if offeredFeatures & VhostUserDevice.protocolFeaturesFeature != 0 { state.insert(.protocolFeaturesOffered) }
        return state
    }

    /// Refuses `request` unless the session is in a state its row allows.
    func require(_ required: VhostUserSessionState, for request: VhostUserRequest) throws(VhostUserProtocolError) {
        if let refusal = required.subtracting(state).refusal(request) { throw refusal }
    }

    /// Any ring started: the device runs, and only LOG_ALL may change (vhost-user.rst
    /// "Migration": dirty logging is switched with SET_FEATURES while rings run).
    var isRunning: Bool { vrings.contains { $0.started } }

    var protocolFeaturesNegotiated: Bool {
        (negotiatedFeatures ?? 0) & VhostUserDevice.protocolFeaturesFeature != 0
    }

    /// RING_PACKED negotiated: rings use the packed layout (VIRTIO 1.1 2.8).
    var ringsArePacked: Bool { (negotiatedFeatures ?? 0) & VhostUserDevice.ringPackedFeature != 0 }

    var dirtyLoggingActive: Bool {
        (negotiatedFeatures ?? 0) & VhostUserDevice.logAllFeature != 0 && dirtyLog != nil
    }

    // MARK: Lifetime

    /// The dataplane lets go of every ring before anything it uses can change (the
    /// dispatcher calls this before a ring-changing request's handler).
    func withdrawQueues() {
        device.withdrawQueues()
        for ring in vrings { ring.dropQueue() }
    }

    /// The session is over: queues withdrawn, `deviceDestroyed`, every fd and mapping released.
    func end() {
        device.sessionEnded(notify: true)
        release()
    }

    /// RESET_OWNER / RESET_DEVICE: back to the state after SET_OWNER; the protocol
    /// features stay (the front-end does not negotiate them again).
    func reset(_: EmptyPayload) -> VhostUserResponse {
        device.sessionEnded(notify: false)
        release()
        negotiatedFeatures = nil
        status = 0
        mtu = nil
        ringsStoppedReported = false
        return .done
    }

    private func release() {
        for ring in vrings { ring.reset() }
        memory = nil
        memoryRegions = []
        for file in memoryFiles { file.close() }
        memoryFiles = []
        dirtyLog = nil
        dirtyLogSource?.file.close()
        dirtyLogSource = nil
    }

    /// Logs a refusal or a session end and tells the delegate. Refusals are limited per
    /// session; session ends per device, so a front-end that reconnects in a loop cannot
    /// flood the log either.
    func report(_ error: VhostUserProtocolError, closing: Bool) {
        let (allowed, suppressed) = closing ? device.sessionErrorLimiter.allow() : errorLimiter.allow()
        guard allowed else { return }
        var text = closing ? "session closed: \(error)" : "request refused: \(error)"
        if suppressed > 0 { text += " (\(suppressed) similar reports suppressed)" }
        logger.warning("\(text)")
        device.delegate.deviceReportedError(device, message: text)
    }

    // MARK: Handlers: queries and no-ops

    func getFeatures(_: EmptyPayload) -> VhostUserResponse { .u64(offeredFeatures) }

    /// The row allows this only when PROTOCOL_FEATURES was offered.
    func getProtocolFeatures(_: EmptyPayload) -> VhostUserResponse { .u64(VhostUserProtocolFeature.supportedMask) }

    func getQueueNum(_: EmptyPayload) -> VhostUserResponse { .u64(UInt64(device.configuration.maxQueuePairs)) }

    func getMaxMemSlots(_: EmptyPayload) -> VhostUserResponse { .u64(UInt64(VhostUserLimits.maxMemorySlots)) }

    func getStatus(_: EmptyPayload) -> VhostUserResponse { .u64(UInt64(status)) }

    func setOwner(_: EmptyPayload) -> VhostUserResponse { .done }

    /// Not needed with LOG_SHMFD; the fd is closed with the message.
    func setLogFd(_: LogFdPayload) -> VhostUserResponse { .done }

    /// Not reached: an unsupported request is refused before its payload decodes.
    func refuseUnsupported(_ payload: UnsupportedPayload) throws(VhostUserProtocolError) -> VhostUserResponse {
        throw .unsupportedRequest(payload.request)
    }

    // MARK: Handlers: features and device

    func setFeatures(_ payload: FeatureBits) throws(VhostUserProtocolError) -> VhostUserResponse {
        let requested = payload.mask
        guard requested & ~offeredFeatures == 0 else {
            throw .featuresNotOffered(requested: requested, offered: offeredFeatures)
        }
        let current = negotiatedFeatures ?? 0
        if isRunning && (requested ^ current) & ~VhostUserDevice.logAllFeature != 0 {
            throw .featureChangeWhileRunning(from: current, to: requested)
        }
        negotiatedFeatures = requested
        if (requested ^ current) & VhostUserDevice.ringPackedFeature != 0 {
            // The ring layout changed: addresses set before mean the other layout's areas.
            revalidateRings(.setFeatures)
        }
        let wasLogging = current & VhostUserDevice.logAllFeature != 0
        let logging = requested & VhostUserDevice.logAllFeature != 0
        logger.info("features negotiated", metadata: ["features": "0x\(String(requested, radix: 16))"])
        device.delegate.featuresChanged(device, features: requested)
        if logging != wasLogging {
            if logging && dirtyLog == nil {
                logger.warning("LOG_ALL negotiated without a dirty log (SET_LOG_BASE): writes are not logged")
            }
            logger.info(logging ? "dirty logging started" : "dirty logging stopped")
            device.delegate.migrationStateChanged(device, event: logging ? .loggingStarted : .loggingStopped)
        }
        return .done
    }

    /// The row allows this only when PROTOCOL_FEATURES was offered.
    func setProtocolFeatures(_ payload: FeatureBits) throws(VhostUserProtocolError) -> VhostUserResponse {
        guard payload.mask & ~VhostUserProtocolFeature.supportedMask == 0 else {
            throw .invalidPayload(.setProtocolFeatures, "protocol features 0x\(String(payload.mask, radix: 16)) include bits not offered")
        }
        negotiatedProtocolFeatures = payload.mask
        return .done
    }

    /// VIRTIO status bit DRIVER_OK (VIRTIO 1.1 2.1).
    static let statusDriverOK: UInt8 = 4

    func setStatus(_ payload: DeviceStatus) -> VhostUserResponse {
        let wasDriverOK = status & Self.statusDriverOK != 0
        status = payload.status
        if wasDriverOK != (status & Self.statusDriverOK != 0) {
            logger.info(wasDriverOK ? "driver status: not ready" : "driver status: DRIVER_OK", metadata: ["status": "0x\(String(status, radix: 16))"])
        }
        return .done
    }

    func setMTU(_ payload: MTU) -> VhostUserResponse {
        mtu = payload.mtu
        device.delegate.deviceMTUChanged(device, mtu: payload.mtu)
        return .done
    }

    func sendRarp(_ payload: RarpMac) -> VhostUserResponse {
        logger.info("front-end asks for a RARP announcement", metadata: ["mac": "\(payload.text)"])
        device.delegate.deviceRequestsAnnounce(device, mac: payload.mac)
        return .done
    }
}
