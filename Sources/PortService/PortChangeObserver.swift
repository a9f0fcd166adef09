import Dataplane

/// Told after every change of the ports (create, delete, a new offered feature mask, a new
/// policy), with every port's spec as it is now, in creation order. Persistence
/// (`PortStateStore`) is one: the API changes ports through `PortService` and never saves
/// anything itself. Called with the service's change lock held: keep it short, and never
/// call back into the service's create, delete, feature or policy changes.
public protocol PortChangeObserver: AnyObject, Sendable {
    func portsChanged(_ specs: [PortSpec])
}
