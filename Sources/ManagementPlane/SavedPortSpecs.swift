import Dataplane

/// The saved ports by name, kept in creation order: a change (save or removal) costs the same
/// whatever the number of ports, so the state store's per-call cost stays flat as ports grow
/// (issue 19's churn bound). The order is only materialized for a snapshot or a listing.
struct SavedPortSpecs {
    private var byName: [String: (order: UInt64, spec: PortSpec)] = [:]
    private var nextOrder: UInt64 = 0

    init(_ specs: [PortSpec] = []) {
        for spec in specs { save(spec) }
    }

    var count: Int { byName.count }

    func contains(_ name: String) -> Bool { byName[name] != nil }

    /// Replaces the port of that name in place (it keeps its position) or appends it.
    mutating func save(_ spec: PortSpec) {
        if let existing = byName[spec.name] {
            byName[spec.name] = (existing.order, spec)
        } else {
            byName[spec.name] = (nextOrder, spec)
            nextOrder += 1
        }
    }

    mutating func remove(_ name: String) { byName[name] = nil }

    /// Every saved port, oldest first.
    var inCreationOrder: [PortSpec] { byName.values.sorted { $0.order < $1.order }.map(\.spec) }
}
