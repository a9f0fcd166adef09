import Dataplane
import PortService
import VhostSystem
import VhostUser
import Virtio

/// GET /metrics: the API's counters in the Prometheus text exposition format (0.0.4),
/// each family with HELP and TYPE, counters ending in _total (`promtool check metrics`).
enum MetricsExposition {
    struct Family {
        var name: String
        var type: String
        var help: String
        var samples: [(labels: [(String, String)], value: String)] = []
    }

    final class Builder {
        var families: [Family] = []
        private var index: [String: Int] = [:]

        func add(_ name: String, _ type: String, _ help: String, _ labels: [(String, String)], _ value: UInt64) {
            add(name, type, help, labels, value: String(value))
        }

        func add(_ name: String, _ type: String, _ help: String, _ labels: [(String, String)], value: String) {
            if index[name] == nil {
                index[name] = families.count
                families.append(Family(name: name, type: type, help: help))
            }
            families[index[name]!].samples.append((labels, value))
        }

        func declare(_ name: String, _ type: String, _ help: String) {
            if index[name] == nil {
                index[name] = families.count
                families.append(Family(name: name, type: type, help: help))
            }
        }

        func render() -> String {
            var text = ""
            for family in families {
                text += "# HELP \(family.name) \(family.help)\n# TYPE \(family.name) \(family.type)\n"
                for sample in family.samples {
                    text += family.name
                    if !sample.labels.isEmpty {
                        text += "{" + sample.labels.map { "\($0.0)=\"\(escape($0.1))\"" }.joined(separator: ",") + "}"
                    }
                    text += " \(sample.value)\n"
                }
            }
            return text
        }

        func escape(_ value: String) -> String {
            var result = ""
            for character in value {
                switch character {
                case "\\": result += "\\\\"
                case "\"": result += "\\\""
                case "\n": result += "\\n"
                default: result.append(character)
                }
            }
            return result
        }
    }

    /// Declares the metric families a counter table feeds, in the table's order.
    static func declareFamilies<Snapshot: CounterSnapshot>(_: Snapshot.Type, in metrics: Builder) {
        for counter in Snapshot.counters { metrics.declare(counter.metric.name, "counter", counter.metric.help) }
    }

    /// One sample per counter of the table: `labels` (the port, and for rings the direction)
    /// then the row's own (direction, reason, size).
    static func add<Snapshot: CounterSnapshot>(_ snapshot: Snapshot, labels: [(String, String)], to metrics: Builder) {
        for counter in Snapshot.counters {
            metrics.add(counter.metric.name, "counter", counter.metric.help, labels + counter.labels.map { ($0.name, $0.value) },
                        snapshot[keyPath: counter.field])
        }
    }

    static func render(_ api: ManagementAPI) -> String {
        let metrics = Builder()
        metrics.add("vhost_switch_build_info", "gauge", "Always 1; the version is a label.", [("version", ManagementAPI.version)], 1)
        metrics.add("vhost_switch_uptime_seconds", "gauge", "Seconds since the management plane started.", [],
                    (MonotonicClock.nanoseconds() &- api.startedAt) / 1_000_000_000)
        let statistics = api.service.switchStatistics
        let ports = statistics.ports
        metrics.add("vhost_switch_ports", "gauge", "Ports configured.", [], UInt64(ports.count))

        metrics.declare("vhost_switch_port_up", "gauge",
                        "1 when the port forwards: a vhost-user device ready (queues forwarding), an af-packet interface up.")
        metrics.declare("vhost_switch_port_sessions_total", "counter", "vhost-user sessions since the port was created.")
        metrics.declare("vhost_switch_port_refused_requests_total", "counter", "vhost-user requests refused as invalid.")
        metrics.declare("vhost_switch_port_sessions_closed_on_error_total", "counter", "Sessions ended because of a protocol error.")
        metrics.declare("vhost_switch_port_guest_faults_total", "counter",
                        "Sessions ended by containment: guest memory that could not be accessed, or a ring stopped for invalid chains.")
        // Every family of the counter tables, so each shows its HELP and TYPE with no port.
        declareFamilies(VirtqueueStatisticsSnapshot.self, in: metrics)
        declareFamilies(PacketSocketPortStatistics.Snapshot.self, in: metrics)
        declareFamilies(PortSwitchStatistics.self, in: metrics)
        for port in ports {
            let name = port.name
            if let info = port.device {
                metrics.add("vhost_switch_port_up", "gauge", "", [("port", name)], info.state == .ready ? 1 : 0)
                metrics.add("vhost_switch_port_sessions_total", "counter", "", [("port", name)], info.sessions)
                metrics.add("vhost_switch_port_refused_requests_total", "counter", "", [("port", name)], info.refusedRequests)
                metrics.add("vhost_switch_port_sessions_closed_on_error_total", "counter", "", [("port", name)], info.sessionsClosedOnError)
                metrics.add("vhost_switch_port_guest_faults_total", "counter", "", [("port", name)], info.guestFaults)
            }
            if port.device != nil {
                // The rings' side: what the switch took from the guest's transmit rings is rx.
                add(port.rx, labels: [("port", name), ("direction", "rx")], to: metrics)
                add(port.tx, labels: [("port", name), ("direction", "tx")], to: metrics)
            }
            if let kernel = port.kernel {
                metrics.add("vhost_switch_port_up", "gauge", "", [("port", name)], port.linkUp == true ? 1 : 0)
                add(kernel, labels: [("port", name)], to: metrics)
            }
            add(port.switchCounters, labels: [("port", name)], to: metrics)
        }

        let threadFamilies: [(String, String, KeyPath<PollThreadStatistics.Snapshot, UInt64>)] = [
            ("iterations_total", "Poll loop iterations.", \.iterations),
            ("busy_cycles_total", "TSC cycles spent in iterations that moved packets.", \.busyCycles),
            ("idle_cycles_total", "TSC cycles spent in iterations that moved nothing.", \.idleCycles),
            ("packets_total", "Packets forwarded by the poll thread.", \.packets),
            ("sleeps_total", "Times the poll thread parked on its eventfds (adaptive polling).", \.sleeps),
        ]
        for (suffix, help, _) in threadFamilies { metrics.declare("vhost_switch_pmd_\(suffix)", "counter", help) }
        metrics.declare("vhost_switch_pmd_busy_cycles_per_packet", "gauge", "Busy TSC cycles per forwarded packet.")
        metrics.declare("vhost_switch_pmd_max_burst_seconds", "gauge", "The longest poll loop iteration since start.")
        metrics.declare("vhost_switch_pmd_queues", "gauge", "Receive queues assigned to the poll thread.")
        for thread in statistics.pollThreads {
            let snapshot = thread.statistics
            let labels = [("thread", String(thread.index))]
            for (suffix, _, path) in threadFamilies {
                metrics.add("vhost_switch_pmd_\(suffix)", "counter", "", labels, snapshot[keyPath: path])
            }
            metrics.add("vhost_switch_pmd_busy_cycles_per_packet", "gauge", "", labels, value: String(snapshot.busyCyclesPerPacket))
            metrics.add("vhost_switch_pmd_max_burst_seconds", "gauge", "", labels,
                        value: String(Double(snapshot.maxIterationNanoseconds) / 1e9))
            metrics.add("vhost_switch_pmd_queues", "gauge", "", labels, UInt64(thread.queues.count))
        }

        metrics.add("vhost_switch_fdb_entries", "gauge", "MAC addresses in the forwarding database.", [],
                    UInt64(statistics.fdbEntries))
        metrics.add("vhost_switch_fdb_capacity", "gauge", "Slots in the forwarding database.", [], UInt64(statistics.fdbCapacity))

        let counts = api.events.counts
        metrics.declare("vhost_switch_events_total", "counter", "Events published, by type.")
        for kind in SwitchEvent.Kind.allCases {
            metrics.add("vhost_switch_events_total", "counter", "", [("type", kind.rawValue)], counts[kind] ?? 0)
        }
        metrics.add("vhost_switch_event_subscribers", "gauge", "Open event streams.", [], UInt64(api.events.subscriberCount))
        addVringMetrics(statistics, to: metrics)
        addProcessMetrics(startedAt: api.startedAt, to: metrics)
        return metrics.render()
    }
}
