import VhostSystem

/// Something that happened to a port, for logs, the event stream and metrics.
public struct SwitchEvent: Sendable, Equatable {
    public enum Kind: String, Sendable, CaseIterable {
        case portCreated = "port.created"
        case portDeleted = "port.deleted"
        /// A live port's policy changed (PATCH); `data.changed` lists the keys.
        case portUpdated = "port.updated"
        case deviceConnected = "device.connected"
        case deviceReady = "device.ready"
        case deviceDestroyed = "device.destroyed"
        case vringStateChanged = "vring.state_changed"
        case featuresChanged = "features.changed"
        case loggingStarted = "migration.logging_started"
        case loggingStopped = "migration.logging_stopped"
        case ringsStopped = "migration.rings_stopped"
        case rarpSent = "migration.rarp_sent"
        case linkChanged = "port.link_changed"
        /// A new process takes over from this one's predecessor (`--takeover`): event ids
        /// continue from the old daemon's.
        case handoverStarted = "daemon.handover_started"
        /// The new process serves every port; `data.gap_ms`: how long no queue was polled.
        case handoverCompleted = "daemon.handover_completed"
        case error = "error"
    }

    public var kind: Kind
    public var port: String?
    /// Wall-clock milliseconds since the epoch.
    public var time: UInt64
    /// Small flat details: strings, numbers and booleans rendered as text by the consumer.
    public var data: [String: EventValue]

    public enum EventValue: Sendable, Equatable {
        case string(String)
        case integer(Int64)
        case bool(Bool)
    }

    public init(_ kind: Kind, port: String?, data: [String: EventValue] = [:]) {
        self.kind = kind
        self.port = port
        self.time = MonotonicClock.wallMilliseconds()
        self.data = data
    }
}

/// Receives events; the management plane installs one that feeds its history and stream.
public typealias SwitchEventHandler = @Sendable (SwitchEvent) -> Void
