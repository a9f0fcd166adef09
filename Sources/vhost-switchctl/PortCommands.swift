import ArgumentParser
import ManagementClient

/// `ports`: every port, one line each.
struct Ports: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List the ports (GET /v1/ports).")

    @OptionGroup var options: APIOptions

    func run() throws {
        try options.session().run("GET", "/v1/ports") { PortTables.list($0["ports"]?.arrayValue ?? []) }
    }
}

/// `port show|add|del|set`.
struct PortCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "port",
        abstract: "Show, add, delete or change one port.",
        subcommands: [Show.self, Add.self, Delete.self, Change.self])

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "One port's settings and state (GET /v1/ports/NAME).")

        @Argument(help: "The port's name.") var name: String
        @OptionGroup var options: APIOptions

        func run() throws {
            try options.session().run("GET", APISession.portPath(name), table: TextTable.fields)
        }
    }

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a port (POST /v1/ports).",
            usage: """
                vhost-switchctl port add NAME vhost-user SOCKET [--mode client|server] [--queues N] [--mtu N] [--mac MAC] [--vlan N] [--trunk LIST]
                vhost-switchctl port add NAME af-packet IFACE [--vlan N] [--trunk LIST]
                vhost-switchctl port add NAME af-xdp IFACE [--queue N] [--queues N] [--xdp-mode native|generic|auto] [--vlan N] [--trunk LIST]
                """)

        enum PortType: String, ExpressibleByArgument, CaseIterable {
            case vhostUser = "vhost-user"
            case afPacket = "af-packet"
            case afXdp = "af-xdp"
        }

        enum XDPMode: String, ExpressibleByArgument, CaseIterable {
            case native, generic, auto
        }

        enum SocketMode: String, ExpressibleByArgument, CaseIterable {
            case client, server
        }

        @Argument(help: "The port's name.") var name: String
        @Argument(help: "vhost-user, af-packet or af-xdp.") var type: PortType
        @Argument(help: "vhost-user: the socket path, relative to the daemon's --socket-dir; af-packet, af-xdp: the host interface.")
        var target: String
        @Option(help: "vhost-user: the switch's side of the socket (server: the switch listens).") var mode: SocketMode?
        @Option(help: "vhost-user: queue pairs; af-xdp: how many queues from --queue on.") var queues: Int?
        @Option(help: "vhost-user: the MTU offered to the guest.") var mtu: Int?
        @Option(help: "vhost-user: the MAC offered to the guest.") var mac: String?
        @Option(help: "af-xdp: the interface's receive queue (default 0).") var queue: Int?
        @Option(help: "af-xdp: where the XDP program runs (default auto: native when the driver has it).") var xdpMode: XDPMode?
        @Option(help: "Access VLAN (with --trunk: the native VLAN).") var vlan: Int?
        @Option(help: ArgumentHelp("VLANs carried tagged, e.g. 10,20.", valueName: "LIST")) var trunk: String?
        @OptionGroup var options: APIOptions

        func validate() throws {
            if type != .vhostUser, mode != nil || mtu != nil || mac != nil || (type == .afPacket && queues != nil) {
                throw ValidationError("--mode, --mtu and --mac are for vhost-user ports, --queues for vhost-user and af-xdp ports")
            }
            if type != .afXdp, queue != nil || xdpMode != nil {
                throw ValidationError("--queue and --xdp-mode are for af-xdp ports")
            }
            _ = try body()
        }

        /// The POST body; the daemon checks the values' ranges.
        func body() throws(ValidationError) -> JSONValue {
            var port: JSONObject = ["name": .string(name), "type": .string(type.rawValue)]
            switch type {
            case .vhostUser:
                var socket: JSONObject = ["path": .string(target)]
                if let mode { socket["mode"] = .string(mode.rawValue) }
                port["socket"] = .object(socket)
                if let queues { port["queues"] = .integer(queues) }
                if let mtu { port["mtu"] = .integer(mtu) }
                if let mac { port["mac"] = .string(mac) }
            case .afPacket:
                port["interface"] = .string(target)
            case .afXdp:
                port["interface"] = .string(target)
                if let queue { port["queue"] = .integer(queue) }
                if let queues { port["queues"] = .integer(queues) }
                if let xdpMode { port["mode"] = .string(xdpMode.rawValue) }
            }
            if let vlan { port["vlan"] = .integer(vlan) }
            if let trunk {
                do { port["trunk"] = try PortSettingPatch.integerList(trunk) } catch { throw ValidationError("--trunk: \(error)") }
            }
            return .object(port)
        }

        func run() throws {
            try options.session().run("POST", "/v1/ports", body: try body(), table: TextTable.fields)
        }
    }

    struct Delete: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "del", abstract: "Delete a port (DELETE /v1/ports/NAME).", aliases: ["delete"])

        @Argument(help: "The port's name.") var name: String
        @OptionGroup var options: APIOptions

        func run() throws {
            try options.session().run("DELETE", APISession.portPath(name)) { _ in "deleted port \(name)\n" }
        }
    }

    struct Change: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "set",
            abstract: "Change a port's settings live (PATCH /v1/ports/NAME with a JSON merge patch).",
            discussion: """
                Keys: \(PortSettingPatch.keys.map(\.name).joined(separator: ", ")).
                Examples: vlan=10  vlan=none  trunk=10,20  allowed_macs=02:00:00:00:00:01,02:00:00:00:00:02  max_macs=100
                rate_limit=10000/64 (PPS/BURST)  rate_limit=none  storm_control.broadcast_pps=1000  storm_control=none
                rxq_affinity=0:1,1:0 (QUEUE:THREAD).
                "none" resets a key to its default (JSON null).
                """)

        @Argument(help: "The port's name.") var name: String
        @Argument(help: ArgumentHelp("Settings to change.", valueName: "KEY=VALUE")) var settings: [String]
        @OptionGroup var options: APIOptions

        func validate() throws { _ = try patch() }

        func patch() throws(ValidationError) -> JSONValue {
            do { return try PortSettingPatch(settings).json } catch { throw ValidationError(error.description) }
        }

        func run() throws {
            try options.session().run("PATCH", APISession.portPath(name), body: try patch(), table: TextTable.fields)
        }
    }
}

/// The ports table.
enum PortTables {
    static func list(_ ports: [JSONValue]) -> String {
        var table = TextTable(["NAME", "TYPE", "ID", "STATE", "SOCKET/INTERFACE", "MODE", "QUEUES", "VLAN", "TRUNK"])
        for port in ports {
            let socket = port["socket"]
            let location = [socket?["absolute_path"], socket?["path"], port["interface"]].compactMap { $0 }.first { !$0.isNull }
            table.add([
                Cell.text(port["name"]), Cell.text(port["type"]), Cell.text(port["id"]), Cell.text(port["state"]), Cell.text(location),
                Cell.text(socket?["mode"]), Cell.text(port["queues"]), Cell.text(port["vlan"]), Cell.text(port["trunk"]),
            ])
        }
        return table.rendered()
    }
}
