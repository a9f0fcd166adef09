import Virtio

/// Checks that a counter family's table and its snapshot's stored fields agree, and that the
/// table is well formed for the API's JSON and for /metrics. Returns what is wrong (empty
/// when nothing is), so tests assert `XCTAssertEqual(problems, [])`.
public enum CounterTableChecks {
    /// Every counter the snapshot stores, by field name (an array's elements as name[i]).
    public static func storedCounters<Snapshot>(_ snapshot: Snapshot) -> [(name: String, value: UInt64)] {
        var result: [(String, UInt64)] = []
        for child in Mirror(reflecting: snapshot).children {
            let name = child.label ?? "?"
            if let value = child.value as? UInt64 {
                result.append((name, value))
            } else if let values = child.value as? [UInt64] {
                for (index, value) in values.enumerated() { result.append(("\(name)[\(index)]", value)) }
            } else {
                result.append((name + " (not a counter)", 0))
            }
        }
        return result
    }

    public static func problems<Snapshot: CounterSnapshot>(_: Snapshot.Type) -> [String] {
        var problems: [String] = []
        let rows = Snapshot.counters

        // A distinct value written through each row's key path: every stored field must then
        // hold exactly one of them (each field in the table once, no two rows on one field).
        var snapshot = Snapshot()
        for (index, row) in rows.enumerated() { snapshot[keyPath: row.field] = UInt64(index + 1) }
        for (index, row) in rows.enumerated() where snapshot[keyPath: row.field] != UInt64(index + 1) {
            problems.append("row \(index) (\(row.help)) shares its field with a later row")
        }
        let stored = storedCounters(snapshot)
        for field in stored where field.value == 0 {
            problems.append("\(Snapshot.self).\(field.name) has no row in the counter table")
        }
        if stored.count != rows.count {
            problems.append("\(Snapshot.self) stores \(stored.count) counters, its table has \(rows.count) rows")
        }

        // JSON: distinct paths of snake_case keys.
        let paths = rows.compactMap { $0.jsonPath?.joined(separator: ".") }
        if Set(paths).count != paths.count { problems.append("duplicate JSON paths in \(paths)") }
        for path in rows.compactMap(\.jsonPath) {
            for key in path where key.isEmpty || key.contains(where: { $0.isUppercase || $0 == " " || $0 == "." }) {
                problems.append("JSON key \"\(key)\" of \(path) is not snake_case")
            }
        }

        // Metrics: counter names, one series per row, one unit and one help text per family.
        var series = Set<String>()
        var unitOfFamily: [String: CounterUnit] = [:]
        var helpOfFamily: [String: String] = [:]
        for row in rows {
            let name = row.metric.name
            if name.wholeMatch(of: /vhost_switch_[a-z0-9_]+_total/) == nil { problems.append("metric name \(name)") }
            if row.metric.help.isEmpty || row.help.isEmpty { problems.append("\(name): help text missing") }
            let key = name + "{" + row.labels.map { "\($0.name)=\($0.value)" }.joined(separator: ",") + "}"
            if !series.insert(key).inserted { problems.append("two rows feed the series \(key)") }
            if let unit = unitOfFamily.updateValue(row.unit, forKey: name), unit != row.unit { problems.append("\(name) mixes units") }
            if let help = helpOfFamily.updateValue(row.metric.help, forKey: name), help != row.metric.help {
                problems.append("\(name) has two help texts")
            }
            if (row.unit == .bytes) != name.contains("_bytes_") { problems.append("\(name): a bytes counter has bytes in its name, no other") }
        }
        return problems
    }
}
