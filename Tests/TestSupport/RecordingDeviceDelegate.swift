import Synchronization
import VhostUser

/// Records every delegate call, thread-safe: for tests of the protocol layer.
public final class RecordingDeviceDelegate: VhostUserDeviceDelegate {
    public enum Event: Equatable, Sendable {
        case connected
        case queuesChanged([Int])
        case ready
        case destroyed
        case vringState(Int, Bool)
        case features(UInt64)
        case migration(VhostUserMigrationEvent)
        case announce([UInt8])
        case error(String)
        case mtu(Int)
    }

    private let state = Mutex<([Event], [ActiveQueue])>(([], []))
    /// Called on each deviceQueuesChanged (on the control thread), for ordering checks.
    public let onQueuesChanged = Mutex<(@Sendable ([ActiveQueue]) -> Void)?>(nil)

    public init() {}

    public var events: [Event] { state.withLock { $0.0 } }
    /// The queues of the latest deviceQueuesChanged.
    public var queues: [ActiveQueue] { state.withLock { $0.1 } }
    public var errors: [String] { events.compactMap { if case .error(let text) = $0 { text } else { nil } } }
    public func clear() { state.withLock { $0.0 = [] } }
    public func count(_ event: Event) -> Int { events.filter { $0 == event }.count }

    private func record(_ event: Event) { state.withLock { $0.0.append(event) } }

    public func deviceConnected(_ device: VhostUserDevice) { record(.connected) }
    public func deviceQueuesChanged(_ device: VhostUserDevice, queues: [ActiveQueue]) {
        onQueuesChanged.withLock { $0 }?(queues)
        state.withLock {
            $0.0.append(.queuesChanged(queues.map(\.vringIndex)))
            $0.1 = queues
        }
    }
    public func deviceReady(_ device: VhostUserDevice) { record(.ready) }
    public func deviceDestroyed(_ device: VhostUserDevice) { record(.destroyed) }
    public func vringStateChanged(_ device: VhostUserDevice, vringIndex: Int, enabled: Bool) { record(.vringState(vringIndex, enabled)) }
    public func featuresChanged(_ device: VhostUserDevice, features: UInt64) { record(.features(features)) }
    public func migrationStateChanged(_ device: VhostUserDevice, event: VhostUserMigrationEvent) { record(.migration(event)) }
    public func deviceRequestsAnnounce(_ device: VhostUserDevice, mac: [UInt8]) { record(.announce(mac)) }
    public func deviceReportedError(_ device: VhostUserDevice, message: String) { record(.error(message)) }
    public func deviceMTUChanged(_ device: VhostUserDevice, mtu: Int) { record(.mtu(mtu)) }
}
