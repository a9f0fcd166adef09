import ArgumentParser
import ManagementClient

/// `stats`: counters per port, per queue and per poll thread, and which poll thread serves
/// which receive queue (like `ovs-appctl dpif-netdev/pmd-rxq-show`), from GET /v1/stats.
struct Stats: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Counters per port, per queue and per poll thread, and the rx-queue placement (GET /v1/stats).")

    @OptionGroup var options: APIOptions

    func run() throws {
        try options.session().run("GET", "/v1/stats", table: StatsReport.render)
    }
}

/// The tables of `stats`.
enum StatsReport {
    static func render(_ stats: JSONValue) -> String {
        let ports = stats["ports"]?.arrayValue ?? []
        let threads = stats["poll_threads"]?.arrayValue ?? []
        return [portTable(ports), queueTable(ports, threads), threadTable(threads), placement(ports, threads), summary(stats)]
            .joined(separator: "\n")
    }

    /// The poll thread that serves each (port, vring).
    private static func owners(_ threads: [JSONValue]) -> [String: String] {
        var owners: [String: String] = [:]
        for thread in threads {
            for queue in thread["queues"]?.arrayValue ?? [] {
                owners[Cell.text(queue["port"]) + "/" + Cell.text(queue["vring"])] = Cell.text(thread["index"])
            }
        }
        return owners
    }

    /// What the switch counted for each port (any type): received from it, sent to it, dropped.
    static func portTable(_ ports: [JSONValue]) -> String {
        var table = TextTable(["PORT", "STATE", "RX PACKETS", "RX BYTES", "TX PACKETS", "TX DROPPED", "DROPS"])
        for port in ports {
            let counters = port["switch"]
            let drops = counters?["drops"]?.objectValue.map { object in object.keys.reduce(UInt64(0)) { $0 &+ Cell.count(object[$1]) } } ?? 0
            let state = port["state"] ?? port["kernel"].map { $0["interface_up"]?.boolValue == true ? JSONValue.string("up") : .string("down") }
            table.add([Cell.text(port["name"]), Cell.text(state), Cell.text(counters?["rx_packets"]), Cell.text(counters?["rx_bytes"]),
                       Cell.text(counters?["tx_packets"]), Cell.text(counters?["tx_dropped"]), String(drops)])
        }
        return "ports (the switch's counts; DROPS: every cause in switch.drops)\n" + table.rendered()
    }

    /// Each vhost-user ring's own counters (odd vrings are the guest's transmit rings, which
    /// the switch receives from) and its poll thread.
    static func queueTable(_ ports: [JSONValue], _ threads: [JSONValue]) -> String {
        let owners = owners(threads)
        var table = TextTable(["PORT", "VRING", "PMD", "PACKETS", "BYTES", "DROPS"])
        for port in ports {
            for vring in port["vrings"]?.arrayValue ?? [] {
                let counters = vring["counters"]?.objectValue ?? JSONObject()
                let drops = counters.keys.filter { $0.hasPrefix("drops_") }.reduce(UInt64(0)) { $0 &+ Cell.count(counters[$1]) }
                let key = Cell.text(port["name"]) + "/" + Cell.text(vring["index"])
                table.add([Cell.text(port["name"]), Cell.text(vring["index"]), owners[key] ?? "-",
                           Cell.text(counters["packets"]), Cell.text(counters["bytes"]), String(drops)])
            }
        }
        return "queues (vhost-user rings of connected ports)\n" + table.rendered()
    }

    static func threadTable(_ threads: [JSONValue]) -> String {
        var table = TextTable(["PMD", "ITERATIONS", "PACKETS", "BUSY", "CYCLES/PACKET", "SLEEPS", "MAX BURST us"])
        for thread in threads {
            table.add([Cell.text(thread["index"]), Cell.text(thread["iterations"]), Cell.text(thread["packets"]),
                       Cell.percent(thread["busy_ratio"]?.doubleValue ?? 0),
                       String(Int((thread["busy_cycles_per_packet"]?.doubleValue ?? 0).rounded())),
                       Cell.text(thread["sleeps"]), String(Cell.count(thread["max_burst_ns"]) / 1000)])
        }
        return "poll threads\n" + table.rendered()
    }

    /// Receive queues by poll thread, with each queue's share of the packets its thread
    /// received (a vring's packets; an af-packet port's switch rx_packets).
    static func placement(_ ports: [JSONValue], _ threads: [JSONValue]) -> String {
        var received: [String: UInt64] = [:]
        for port in ports {
            let name = Cell.text(port["name"])
            if let vrings = port["vrings"]?.arrayValue, !vrings.isEmpty {
                for vring in vrings { received[name + "/" + Cell.text(vring["index"])] = Cell.count(vring["counters"]?["packets"]) }
            } else {
                received[name + "/0"] = Cell.count(port["switch"]?["rx_packets"])
            }
        }
        var out = "rx-queue placement\n"
        for thread in threads {
            let queues = thread["queues"]?.arrayValue ?? []
            let counts = queues.map { received[Cell.text($0["port"]) + "/" + Cell.text($0["vring"])] ?? 0 }
            let total = counts.reduce(0, &+)
            out += "pmd thread \(Cell.text(thread["index"])):\n"
            if queues.isEmpty { out += "  (no queues)\n"; continue }
            var table = TextTable(["  PORT", "VRING", "RX PACKETS", "SHARE"])
            for (queue, count) in zip(queues, counts) {
                table.add(["  " + Cell.text(queue["port"]), Cell.text(queue["vring"]), String(count),
                           total == 0 ? "-" : Cell.percent(Double(count) / Double(total))])
            }
            out += table.rendered()
        }
        return out
    }

    static func summary(_ stats: JSONValue) -> String {
        "fdb: \(Cell.text(stats["fdb"]?["entries"])) of \(Cell.text(stats["fdb"]?["capacity"])) entries; "
            + "events: \(Cell.text(stats["events"]?["published"])) published, \(Cell.text(stats["events"]?["subscribers"])) subscribers\n"
    }
}
