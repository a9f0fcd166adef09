import Virtio

/// A counter family's snapshot as the API shows it: each counter of the family's table at its
/// JSON path, objects made on the way ("drops.hairpin" lands in a "drops" object). The
/// field names are the contract in openapi/vhost-switch.yaml; the tables carry them.
enum CounterJSON {
    static func object<Snapshot: CounterSnapshot>(_ snapshot: Snapshot) -> JSON {
        var members: [String: JSON] = [:]
        add(snapshot, to: &members)
        return .object(members)
    }

    /// Adds the family's counters to `members`, beside what is already there.
    static func add<Snapshot: CounterSnapshot>(_ snapshot: Snapshot, to members: inout [String: JSON]) {
        for counter in Snapshot.counters {
            guard let path = counter.jsonPath else { continue }
            set(ManagementAPI.count(snapshot[keyPath: counter.field]), at: path[...], in: &members)
        }
    }

    private static func set(_ value: JSON, at path: ArraySlice<String>, in members: inout [String: JSON]) {
        guard let key = path.first else { return }
        if path.count == 1 {
            members[key] = value
            return
        }
        var inner: [String: JSON] = [:]
        if case .object(let existing) = members[key] { inner = existing }
        set(value, at: path.dropFirst(), in: &inner)
        members[key] = .object(inner)
    }
}
