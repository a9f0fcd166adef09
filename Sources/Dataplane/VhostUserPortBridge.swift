import Logging
import VhostUser
import Virtio

/// Connects one vhost-user device to the switch: its usable rings become the port's
/// queues, and its lifecycle becomes events. Runs on the vhost-user control thread.
final class VhostUserPortBridge: VhostUserDeviceDelegate, @unchecked Sendable {
    let portID: Int
    let name: String
    private let fabric: Switch
    private let emit: SwitchEventHandler
    private let logger: Logger

    init(portID: Int, name: String, fabric: Switch, logger: Logger, emit: @escaping SwitchEventHandler) {
        self.portID = portID
        self.name = name
        self.fabric = fabric
        self.emit = emit
        var logger = logger
        logger[metadataKey: "port"] = "\(name)"
        self.logger = logger
    }

    func deviceConnected(_ device: VhostUserDevice) {
        logger.info("front-end connected")
        emit(SwitchEvent(.deviceConnected, port: name))
    }

    func deviceQueuesChanged(_ device: VhostUserDevice, queues: [ActiveQueue]) {
        fabric.setQueues(portID: portID, queues: queues)
    }

    func deviceReady(_ device: VhostUserDevice) {
        logger.info("device ready")
        emit(SwitchEvent(.deviceReady, port: name))
    }

    func deviceDestroyed(_ device: VhostUserDevice) {
        logger.info("device session ended")
        emit(SwitchEvent(.deviceDestroyed, port: name))
    }

    func vringStateChanged(_ device: VhostUserDevice, vringIndex: Int, enabled: Bool) {
        logger.debug("vring \(vringIndex) \(enabled ? "enabled" : "disabled")")
        emit(SwitchEvent(.vringStateChanged, port: name, data: ["vring": .integer(Int64(vringIndex)), "enabled": .bool(enabled)]))
    }

    func featuresChanged(_ device: VhostUserDevice, features: UInt64) {
        logger.info("features negotiated: \(FeatureNames.names(of: features).joined(separator: ","))")
        emit(SwitchEvent(.featuresChanged, port: name, data: ["mask": .string("0x" + String(features, radix: 16))]))
    }

    func migrationStateChanged(_ device: VhostUserDevice, event: VhostUserMigrationEvent) {
        let kind: SwitchEvent.Kind = switch event {
        case .loggingStarted: .loggingStarted
        case .loggingStopped: .loggingStopped
        case .ringsStopped: .ringsStopped
        }
        logger.info("\(kind.rawValue)")
        emit(SwitchEvent(kind, port: name))
    }

    func deviceRequestsAnnounce(_ device: VhostUserDevice, mac: [UInt8]) {
        // Sending the RARP itself comes with live-migration support.
        logger.info("front-end asked to announce \(mac.map { String($0, radix: 16) }.joined(separator: ":"))")
    }

    func deviceReportedError(_ device: VhostUserDevice, message: String) {
        logger.warning("\(message)")
        emit(SwitchEvent(.error, port: name, data: ["message": .string(message)]))
    }
}
