import Logging
import Synchronization
import VhostSystem
import VhostUser
import Virtio

/// Connects one vhost-user device to the switch: its usable rings become the port's
/// queues, and its lifecycle becomes events. Runs on the vhost-user control thread.
public final class VhostUserPortBridge: VhostUserDeviceDelegate, @unchecked Sendable {
    let portID: Int
    let name: String
    private let fabric: Switch
    private let sendEvent: SwitchEventHandler
    /// A session handed over by the previous process is being adopted (live hand-over): its
    /// replayed requests and readiness are not news, so no events until `adoptionFinished`.
    private let adopting: Atomic<Bool>
    private let logger: Logger
    /// A SEND_RARP that came before the device was ready waits for it (control thread only).
    private var pendingAnnouncement: [UInt8]?
    private var isReady = false
    /// When each MAC was last announced (monotonic ms): one RARP per MAC per interval.
    private var lastAnnounced: [UInt64: UInt64] = [:]

    public init(portID: Int, name: String, fabric: Switch, logger: Logger, emit: @escaping SwitchEventHandler, adopting: Bool = false) {
        self.adopting = Atomic(adopting)
        self.portID = portID
        self.name = name
        self.fabric = fabric
        sendEvent = emit
        var logger = logger
        logger[metadataKey: "port"] = "\(name)"
        self.logger = logger
    }

    /// The adopted session runs: events from here on.
    public func adoptionFinished() { adopting.store(false, ordering: .releasing) }

    private func emit(_ event: SwitchEvent) {
        if !adopting.load(ordering: .acquiring) { sendEvent(event) }
    }

    public func deviceConnected(_ device: VhostUserDevice) {
        logger.info("front-end connected")
        emit(SwitchEvent(.deviceConnected, port: name))
    }

    public func deviceQueuesChanged(_ device: VhostUserDevice, queues: [ActiveQueue]) {
        fabric.setQueues(portID: portID, queues: queues)
    }

    public func deviceReady(_ device: VhostUserDevice) {
        logger.info("device ready")
        isReady = true
        emit(SwitchEvent(.deviceReady, port: name))
        if let mac = pendingAnnouncement {
            pendingAnnouncement = nil
            announce(mac)
        }
    }

    public func deviceDestroyed(_ device: VhostUserDevice) {
        isReady = false
        logger.info("device session ended")
        emit(SwitchEvent(.deviceDestroyed, port: name))
    }

    public func vringStateChanged(_ device: VhostUserDevice, vringIndex: Int, enabled: Bool) {
        logger.debug("vring \(vringIndex) \(enabled ? "enabled" : "disabled")")
        emit(SwitchEvent(.vringStateChanged, port: name, data: ["vring": .integer(Int64(vringIndex)), "enabled": .bool(enabled)]))
    }

    public func featuresChanged(_ device: VhostUserDevice, features: UInt64) {
        logger.info("features negotiated: \(FeatureNames.names(of: features).joined(separator: ","))")
        emit(SwitchEvent(.featuresChanged, port: name, data: ["mask": .string("0x" + String(features, radix: 16))]))
    }

    public func migrationStateChanged(_ device: VhostUserDevice, event: VhostUserMigrationEvent) {
        let kind: SwitchEvent.Kind = switch event {
        case .loggingStarted: .loggingStarted
        case .loggingStopped: .loggingStopped
        case .ringsStopped: .ringsStopped
        }
        logger.info("\(kind.rawValue)")
        emit(SwitchEvent(kind, port: name))
    }

    /// SEND_RARP after a migration: one RARP from the guest's MAC out of every other port,
    /// which also moves the MAC to this port in our own table.
    public func deviceRequestsAnnounce(_ device: VhostUserDevice, mac: [UInt8]) {
        guard mac.count == 6 else { return }
        if isReady { announce(mac) } else { pendingAnnouncement = mac }
    }

    /// A front-end may ask as often as it likes (each request is budgeted by the session);
    /// a MAC is announced at most once per `VhostUserLimits.announceIntervalMilliseconds`, and
    /// the injection queue is bounded (`Switch.inject` says when it is full).
    private func announce(_ mac: [UInt8]) {
        let address = mac.reduce(0) { $0 << 8 | UInt64($1) }
        let now = MonotonicClock.nanoseconds() / 1_000_000
        let interval = VhostUserLimits.announceIntervalMilliseconds
        if let last = lastAnnounced[address], now &- last < interval { return }
        if lastAnnounced.count >= VhostUserLimits.maxPendingAnnouncements {
            lastAnnounced = lastAnnounced.filter { now &- $0.value < interval }
            guard lastAnnounced.count < VhostUserLimits.maxPendingAnnouncements else { return }
        }
        lastAnnounced[address] = now
        let text = MacAddress.format(address)
        guard fabric.inject(frame: AnnouncementFrame.rarp(mac: mac), fromPort: portID) else {
            logger.warning("RARP for \(text) not sent: the injection queue is full")
            return
        }
        logger.info("RARP sent for \(text)")
        emit(SwitchEvent(.rarpSent, port: name, data: ["mac": .string(text)]))
    }

    public func deviceReportedError(_ device: VhostUserDevice, message: String) {
        logger.warning("\(message)")
        emit(SwitchEvent(.error, port: name, data: ["message": .string(message)]))
    }
}
