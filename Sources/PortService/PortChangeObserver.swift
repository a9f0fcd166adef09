import Dataplane

/// One change of the ports, as persistence records it.
public enum PortChange: Sendable, Equatable {
    /// A port was created, or its spec changed (a new offered feature mask, a new policy):
    /// its whole spec as it is now.
    case saved(PortSpec)
    case removed(name: String)
}

/// Told after every change of the ports, one change at a time and in order. Persistence
/// (`PortStateStore`) is one: the API changes ports through `PortService` and never saves
/// anything itself. Called with the service's change lock held: keep it short (O(1), not
/// O(ports): port churn must stay flat), and never call back into the service's create,
/// delete, feature or policy changes.
public protocol PortChangeObserver: AnyObject, Sendable {
    func portChanged(_ change: PortChange)
}
