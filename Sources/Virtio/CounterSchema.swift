/// The schema of the switch's counters. Each counter family (ring, kernel, switch, segment)
/// keeps its counts where its writer can add them cheaply (a snapshot-shaped block,
/// `CounterCells`, or a per-thread block),
/// and lists every counter once, in a table of `CounterDescriptor`s on its snapshot type:
/// the snapshot field it is read from, its place in the REST API's JSON and its series in
/// /metrics. The management plane builds the JSON and /metrics from those tables only, so a
/// counter added to a table appears in both; the poll threads never look at a table.
///
/// It lives in `Virtio`, the lowest module with counters, so `Dataplane` can describe its
/// own families with the same types and `ManagementPlane` render all of them one way.
public protocol CounterSnapshot: Sendable {
    init()
    /// Every counter of the family, each once.
    static var counters: [CounterDescriptor<Self>] { get }
}

/// What a counter counts.
public enum CounterUnit: String, Sendable {
    case frames, bytes, events, cycles
}

/// A Prometheus metric family (`# HELP`/`# TYPE` once, then its samples); every counter
/// family's rows name one. Rows of several tables may share a family (a vhost-user port's
/// rings and an af-packet port's socket both feed `vhost_switch_port_packets_total`).
public struct CounterMetricFamily: Sendable, Hashable {
    public let name: String
    public let help: String

    public init(_ name: String, help: String) {
        self.name = name
        self.help = help
    }
}

/// A label a row adds to its sample in its metric family.
public struct CounterLabel: Sendable, Hashable {
    public let name: String
    public let value: String

    public init(_ name: String, _ value: String) {
        self.name = name
        self.value = value
    }

    /// What the switch took from the port (a guest's transmit rings, a kernel interface).
    public static let rx = CounterLabel("direction", "rx")
    /// What the switch gave the port.
    public static let tx = CounterLabel("direction", "tx")
    public static func reason(_ value: String) -> CounterLabel { CounterLabel("reason", value) }
}

/// One counter: one row of its family's table.
public struct CounterDescriptor<Snapshot>: Sendable {
    /// Where the counter is read: its field in the family's snapshot.
    public let field: any WritableKeyPath<Snapshot, UInt64> & Sendable
    /// Its place in the API's JSON, as object keys from the family's object inward; nil for
    /// the few counters the API's contract (openapi/vhost-switch.yaml) has no field for, which
    /// /metrics still shows.
    public let jsonPath: [String]?
    public let unit: CounterUnit
    public let help: String
    public let metric: CounterMetricFamily
    public let labels: [CounterLabel]

    /// `json` is a dotted path ("drops.hairpin"); keys never contain dots.
    public init(_ field: any WritableKeyPath<Snapshot, UInt64> & Sendable, json: String?, _ unit: CounterUnit, _ help: String,
                metric: CounterMetricFamily, _ labels: CounterLabel...) {
        self.field = field
        jsonPath = json.map { $0.split(separator: ".").map(String.init) }
        self.unit = unit
        self.help = help
        self.metric = metric
        self.labels = labels
    }
}

extension CounterSnapshot {
    /// Adds `other` counter by counter (a port's rings, or its poll threads' blocks).
    public mutating func add(_ other: Self) {
        for counter in Self.counters { self[keyPath: counter.field] &+= other[keyPath: counter.field] }
    }

    /// The sum of the counters that feed `metric` (with `label`, when given): e.g. every drop.
    public func total(of metric: CounterMetricFamily, with label: CounterLabel? = nil) -> UInt64 {
        var sum: UInt64 = 0
        for counter in Self.counters where counter.metric == metric && (label.map(counter.labels.contains) ?? true) {
            sum &+= self[keyPath: counter.field]
        }
        return sum
    }
}

extension CounterMetricFamily {
    /// How every per-port family reads its `direction` label.
    public static let directionHelp = "Direction rx is what the switch took from the port (a guest's transmit rings, a kernel interface), tx what it gave it."

    /// A per-port family: `vhost_switch_port_<name>_total`, its help followed by `directionHelp`.
    public static func port(_ name: String, help: String) -> CounterMetricFamily {
        CounterMetricFamily("vhost_switch_port_\(name)_total", help: help + " " + directionHelp)
    }

    // Shared by the ring and the kernel-socket families.
    public static let portPackets = port("packets", help: "Frames moved through the port's rings or packet socket.")
    public static let portBytes = port("bytes", help: "Frame bytes moved through the port's rings or packet socket, without the virtio-net header.")
    public static let portDrops = port("drops", help: "Frames the port's rings or packet socket dropped, by reason.")
}

extension CounterDescriptor {
    /// A ring drop row: JSON field `drops_<reason>`, counted in frames, a sample of
    /// `vhost_switch_port_drops_total` with that reason.
    public static func drop(_ field: any WritableKeyPath<Snapshot, UInt64> & Sendable, _ reason: String, _ help: String) -> Self {
        .init(field, json: "drops_" + reason, .frames, help, metric: .portDrops, .reason(reason))
    }
}
