import CNISystem
import ManagementClient
import VhostSystem

/// The CNI commands against the daemon's REST API.
struct Plugin {
    let environment: CNIEnvironment
    let config: NetworkConfig
    let settings: InstallSettings
    let client: APIClient
    /// The socket path relative to the daemon's socket directory, or why there is none (DEL
    /// still succeeds then: an ADD with the same parameters failed the same way).
    private let relativeSocket: Result<String, CNIError>

    init(environment: CNIEnvironment, config: NetworkConfig, settings: InstallSettings, client: APIClient) {
        self.environment = environment
        self.config = config
        self.settings = settings
        self.client = client
        relativeSocket = Result { () throws(CNIError) -> String in
            try Naming.socketPath(socketDir: config.socketDir, containerID: environment.containerID, ifname: environment.ifname, args: environment.args)
        }
    }

    var portName: String { Naming.portName(containerID: environment.containerID, ifname: environment.ifname) }
    func socketPath() throws(CNIError) -> String { try relativeSocket.get() }

    /// The socket on the host, in the install settings' socketDirectory, within the 107 bytes
    /// of a unix socket path.
    func hostSocketPath() throws(CNIError) -> String {
        let path = settings.socketDirectory + "/" + (try socketPath())
        guard path.utf8.count <= 107 else {
            throw CNIError(.invalidNetworkConfig, "the socket path \(path) is \(path.utf8.count) bytes, more than the 107 a unix socket path holds",
                           details: "shorten socketDir, the namespace or the pod name, or the interface name")
        }
        return path
    }

    /// The socket as the pod sees it, for the device-info file: in podSocketDir when the
    /// configuration says where the pod mounts its directory, else the host path.
    func podSocketPath() throws(CNIError) -> String {
        guard let directory = config.podSocketDir else { return try hostSocketPath() }
        return directory + "/" + environment.ifname + ".sock"
    }

    /// The MAC for the port: CNI_ARGS MAC=, else runtimeConfig.mac / mac (already merged), "auto" derived.
    func desiredMAC() throws(CNIError) -> String? {
        if let fromArgs = environment.args["MAC"] {
            guard Naming.isMAC(fromArgs) else { throw CNIError(.invalidEnvironment, "CNI_ARGS MAC must look like 02:00:00:00:00:01", details: fromArgs) }
            return fromArgs.lowercased()
        }
        if config.mac == "auto" { return Naming.derivedMAC(containerID: environment.containerID, ifname: environment.ifname) }
        return config.mac
    }

    /// The POST /v1/ports body.
    func portRequest() throws(CNIError) -> JSONValue {
        var socket: JSONObject = ["path": .string(try socketPath()), "mode": .string(config.mode.rawValue)]
        if config.mode == .server {
            if let owner = config.owner { socket["owner"] = .string(owner) }
            if let group = config.group { socket["group"] = .string(group) }
        }
        if let permissions = config.permissions { socket["permissions"] = .string(Self.octal(permissions)) }
        var port: JSONObject = ["name": .string(portName), "type": .string("vhost-user"), "socket": .object(socket)]
        if let queues = config.queues { port["queues"] = .integer(queues) }
        if let mtu = config.mtu { port["mtu"] = .integer(mtu) }
        let mac = try desiredMAC()
        if let mac { port["mac"] = .string(mac) }
        if let features = config.features { port["features"] = .object(features) }
        try config.policy.apply(to: &port, podMAC: mac)
        return .object(port)
    }

    // MARK: ADD

    func add() throws(CNIError) -> JSONValue {
        let request = try portRequest()
        let hostSocket = try hostSocketPath()
        let deviceInfo = DeviceInfo.document(switchMode: config.mode, socketPath: try podSocketPath())
        var ipamResult: JSONObject?
        if let type = config.ipamType {
            ipamResult = try IPAM.run(type: type, command: .add, environment: environment, config: config)
        }
        var created = false
        do throws(CNIError) {
            try PodDirectory(root: settings.socketDirectory, socketPath: try socketPath()).prepare()
            let port = try createPort(request)
            created = true
            if let reported = port["socket"]?["absolute_path"]?.stringValue, reported != hostSocket {
                throw CNIError(.invalidNetworkConfig, "the daemon put the socket at \(reported), not at \(hostSocket)",
                               details: "socketDirectory in \(InstallSettings.path) must be the daemon's --socket-dir")
            }
            if let file = config.deviceInfoFile { try DeviceInfo.write(deviceInfo, to: file, directory: settings.deviceInfoDirectory) }
            Records(config: config).save(port: portName, containerID: environment.containerID, ifname: environment.ifname, socket: try socketPath())
            return result(port: port, hostSocket: hostSocket, ipam: ipamResult)
        } catch {
            // Undo: the port (and with it the pod directory), or the directory alone.
            if created {
                _ = try? deletePort(portName, socketPath: try? socketPath())
            } else if let relative = try? socketPath() {
                PodDirectory(root: settings.socketDirectory, socketPath: relative).cleanUp(removeSocket: false)
            }
            if let type = config.ipamType { _ = try? IPAM.run(type: type, command: .del, environment: environment, config: config) }
            throw error
        }
    }

    private func createPort(_ request: JSONValue) throws(CNIError) -> JSONValue {
        let response = try call("POST", "/v1/ports", body: request)
        switch response.status {
        case 201:
            guard let port = response.json else { throw CNIError(.daemonRefused, "the daemon's answer to POST /v1/ports is not JSON") }
            return port
        case 409:
            // A retried ADD: the port is already there. Fine if it is exactly what we would create.
            let existing = try call("GET", "/v1/ports/\(portName)")
            if existing.status == 200, let port = existing.json, try mismatches(port).isEmpty { return port }
            throw CNIError(.daemonRefused, "port \(portName) or socket \(try socketPath()) already exists with other settings", details: response.errorText)
        case 400:
            throw CNIError(.invalidNetworkConfig, "the daemon refused the port configuration", details: response.errorText)
        default:
            throw daemonError(response, "POST /v1/ports")
        }
    }

    /// The CNI result: the switch port (host side) and the pod's interface with its socket.
    func result(port: JSONValue, hostSocket: String, ipam: JSONObject?) -> JSONValue {
        let hostSide: JSONObject = ["name": .string(portName), "socketPath": .string(hostSocket)]
        var podSide: JSONObject = ["name": .string(environment.ifname)]
        if let mac = port["mac"]?.stringValue { podSide["mac"] = .string(mac) }
        if let mtu = port["mtu"]?.intValue { podSide["mtu"] = .integer(mtu) }
        podSide["sandbox"] = .string(environment.netns)
        podSide["socketPath"] = .string(hostSocket)

        var object: JSONObject = ["cniVersion": .string(config.cniVersion), "interfaces": .array([.object(hostSide), .object(podSide)])]
        var ips: [JSONValue] = []
        for ip in ipam?["ips"]?.arrayValue ?? [] {
            guard var entry = ip.objectValue else { continue }
            entry["interface"] = .integer(1)
            ips.append(.object(entry))
        }
        object["ips"] = .array(ips)
        if let routes = ipam?["routes"], routes.arrayValue != nil { object["routes"] = routes }
        object["dns"] = ipam?["dns"] ?? .object([:])
        return .object(object)
    }

    // MARK: DEL

    func del() throws(CNIError) {
        var firstError: CNIError?
        var deleted = false
        do {
            deleted = try deletePort(portName, socketPath: try? socketPath())
        } catch {
            firstError = error
        }
        if let type = config.ipamType {
            do { try IPAM.run(type: type, command: .del, environment: environment, config: config) } catch {
                if firstError == nil { firstError = error }
            }
        }
        if let firstError { throw firstError }
        // Without a daemon the port may come back from its saved state: GC still sees the record.
        if deleted { Records(config: config).remove(port: portName) }
    }

    /// DELETE /v1/ports/{name}; a missing port, or no daemon at all (no API socket file), is
    /// success. Then cleans up the pod's socket directory (`socketPath`, relative to the
    /// socket directory; never a path the API names). Returns false when there was no daemon.
    @discardableResult
    private func deletePort(_ name: String, socketPath: String?) throws(CNIError) -> Bool {
        var mode = config.mode
        do {
            let existing = try client.request("GET", "/v1/ports/\(name)")
            if existing.status == 200, let port = existing.json {
                mode = port["socket"]?["mode"]?.stringValue.flatMap(NetworkConfig.Mode.init(rawValue:)) ?? mode
            }
            if existing.status != 404 {
                let response = try client.request("DELETE", "/v1/ports/\(name)")
                guard response.status == 204 || response.status == 200 || response.status == 404 else {
                    throw daemonError(response, "DELETE /v1/ports/\(name)")
                }
            }
        } catch let unreachable as APIClient.Unreachable {
            if unreachable.socketMissing {
                CurrentProcess.writeStandardError("vhost-switch-cni: no daemon at \(unreachable.endpoint); nothing to delete for \(name)\n")
                return false
            }
            throw CNIError(.tryAgainLater, "vhost-switch daemon unreachable at \(config.api)", details: unreachable.reason.description)
        } catch let error as CNIError {
            throw error
        } catch {
            throw CNIError(.ioFailure, "\(error)")
        }
        if let socketPath { PodDirectory(root: settings.socketDirectory, socketPath: socketPath).cleanUp(removeSocket: mode == .client) }
        return true
    }

    // MARK: CHECK

    func check() throws(CNIError) {
        guard CNIVersion.atLeast(config.cniVersion, "0.4.0") else {
            throw CNIError(.incompatibleVersion, "CHECK needs cniVersion 0.4.0 or later", details: "the configuration says \(config.cniVersion)")
        }
        let response = try call("GET", "/v1/ports/\(portName)")
        if response.status == 404 { throw CNIError(.checkFailed, "port \(portName) does not exist on the switch") }
        guard response.status == 200, let port = response.json else { throw daemonError(response, "GET /v1/ports/\(portName)") }
        var problems = try mismatches(port)
        if let interfaces = config.prevResult?["interfaces"]?.arrayValue {
            let absolute = port["socket"]?["absolute_path"]?.stringValue
            if let podSide = interfaces.first(where: { $0["name"]?.stringValue == environment.ifname && $0["sandbox"] != nil }) {
                if let expected = podSide["socketPath"]?.stringValue, let absolute, expected != absolute {
                    problems.append("prevResult socketPath \(expected), port socket \(absolute)")
                }
                if let expected = podSide["mac"]?.stringValue, let mac = port["mac"]?.stringValue, expected.lowercased() != mac {
                    problems.append("prevResult mac \(expected), port mac \(mac)")
                }
            } else {
                problems.append("prevResult has no interface \(environment.ifname)")
            }
        }
        if !problems.isEmpty {
            throw CNIError(.checkFailed, "port \(portName) does not match the configuration", details: problems.joined(separator: "; "))
        }
        if let type = config.ipamType { try IPAM.run(type: type, command: .check, environment: environment, config: config) }
    }

    /// What differs between the daemon's port and what this configuration creates.
    func mismatches(_ port: JSONValue) throws(CNIError) -> [String] {
        var problems: [String] = []
        func compare(_ what: String, _ actual: String?, _ expected: String?) {
            guard let expected else { return }
            if actual != expected { problems.append("\(what) is \(actual ?? "unset"), expected \(expected)") }
        }
        compare("type", port["type"]?.stringValue, "vhost-user")
        compare("socket path", port["socket"]?["path"]?.stringValue, try socketPath())
        compare("socket mode", port["socket"]?["mode"]?.stringValue, config.mode.rawValue)
        compare("mac", port["mac"]?.stringValue, try desiredMAC())
        compare("mtu", port["mtu"]?.intValue.map(String.init), config.mtu.map(String.init))
        compare("queues", port["queues"]?.intValue.map(String.init), String(config.queues ?? 1))
        let permissions = port["socket"]?["permissions"]?.stringValue.flatMap { UInt32($0, radix: 8) }
        compare("socket permissions", permissions.map(Self.octal), config.permissions.map(Self.octal))
        problems += config.policy.mismatches(port, podMAC: try desiredMAC())
        if config.mode == .server {
            compare("socket owner", port["socket"]?["owner"]?.stringValue, config.owner)
            compare("socket group", port["socket"]?["group"]?.stringValue, config.group)
        }
        return problems
    }

    // MARK: GC and STATUS (1.1.0)

    func gc() throws(CNIError) {
        guard CNIVersion.atLeast(config.cniVersion, "1.1.0") else {
            throw CNIError(.incompatibleVersion, "GC needs cniVersion 1.1.0 or later", details: "the configuration says \(config.cniVersion)")
        }
        var valid = Set<String>()
        for attachment in config.json["cni.dev/valid-attachments"]?.arrayValue ?? [] {
            guard let id = attachment["containerID"]?.stringValue, let ifname = attachment["ifname"]?.stringValue else { continue }
            valid.insert(Naming.portName(containerID: id, ifname: ifname))
        }
        let records = Records(config: config)
        for record in records.all() where !valid.contains(record.port) {
            if try deletePort(record.port, socketPath: record.socket) { records.remove(port: record.port) }
        }
        if let type = config.ipamType { try IPAM.run(type: type, command: .gc, environment: environment, config: config) }
    }

    func status() throws(CNIError) {
        guard CNIVersion.atLeast(config.cniVersion, "1.1.0") else {
            throw CNIError(.incompatibleVersion, "STATUS needs cniVersion 1.1.0 or later", details: "the configuration says \(config.cniVersion)")
        }
        let response: APIClient.Response
        do { response = try client.request("GET", "/v1/health") } catch {
            throw CNIError(.pluginNotAvailable, "vhost-switch daemon unreachable at \(config.api)", details: error.reason.description)
        }
        guard response.status == 200 else {
            throw CNIError(.pluginNotAvailable, "vhost-switch daemon at \(config.api) is not healthy (HTTP \(response.status))", details: response.errorText)
        }
        if let type = config.ipamType { try IPAM.run(type: type, command: .status, environment: environment, config: config) }
    }

    // MARK: helpers

    private func call(_ method: String, _ path: String, body: JSONValue? = nil) throws(CNIError) -> APIClient.Response {
        do {
            return try client.request(method, path, body: body)
        } catch {
            throw CNIError(.tryAgainLater, "vhost-switch daemon unreachable at \(config.api)", details: error.reason.description)
        }
    }

    private func daemonError(_ response: APIClient.Response, _ what: String) -> CNIError {
        switch response.status {
        case 500...:
            return CNIError(.tryAgainLater, "the daemon failed \(what) (HTTP \(response.status))", details: response.errorText)
        case 401, 403:
            return CNIError(.daemonRefused, "the daemon refused \(what) (HTTP \(response.status)): check apiTokenFile", details: response.errorText)
        default:
            return CNIError(.daemonRefused, "the daemon refused \(what) (HTTP \(response.status))", details: response.errorText)
        }
    }

    static func octal(_ value: UInt32) -> String {
        let digits = String(value, radix: 8)
        return String(repeating: "0", count: max(0, 4 - digits.count)) + digits
    }
}

/// One small file per attachment in <dataDir>/<network name>/<port name>, so GC deletes only
/// ports this network created (several networks may share a daemon and a socketDir).
struct Records {
    /// nil when the network has no usable name (DEL does not insist on one): no records then.
    let directory: String?

    init(config: NetworkConfig) { directory = Naming.isNetworkName(config.name) ? config.dataDir + "/" + config.name : nil }

    /// `socket`: the socket path relative to the socket directory.
    struct Record { var port: String; var socket: String? }

    func save(port: String, containerID: String, ifname: String, socket: String?) {
        guard let directory else { return }
        var object: JSONObject = ["containerID": .string(containerID), "ifname": .string(ifname)]
        if let socket { object["socket"] = .string(socket) }
        do {
            try FileSystem.makeDirectoryTree(directory, permissions: 0o700)
            try FileSystem.writeFileAtomically(directory + "/" + port, Array(JSONValue.object(object).rendered().utf8))
        } catch {
            CurrentProcess.writeStandardError("vhost-switch-cni: cannot record \(port) in \(directory) (GC will not see it): \(error)\n")
        }
    }

    func remove(port: String) {
        if let directory { FileSystem.remove(directory + "/" + port) }
    }

    func all() -> [Record] {
        guard let directory else { return [] }
        return (FileSystem.directoryEntries(directory) ?? []).filter { !$0.hasSuffix(".tmp") }.sorted().map { name in
            let bytes = (try? FileSystem.readFile(directory + "/" + name, maxBytes: 65536)) ?? nil
            let socket = bytes.flatMap { try? JSONValue.parse($0) }?["socket"]?.stringValue
            return Record(port: name, socket: socket)
        }
    }
}
