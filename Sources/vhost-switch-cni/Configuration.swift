import ManagementClient

/// CNI versions this plugin reads and writes. GC and STATUS exist from 1.1.0, CHECK from 0.4.0.
enum CNIVersion {
    static let supported = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]
    static let latest = "1.1.0"

    /// Compares dotted versions numerically ("0.4.0" < "1.0.0").
    static func atLeast(_ version: String, _ minimum: String) -> Bool {
        let a = version.split(separator: ".").map { Int($0) ?? 0 }
        let b = minimum.split(separator: ".").map { Int($0) ?? 0 }
        for i in 0..<max(a.count, b.count) {
            let x = i < a.count ? a[i] : 0
            let y = i < b.count ? b[i] : 0
            if x != y { return x > y }
        }
        return true
    }
}

/// The CNI_* environment variables (spec 1.0.0, "Parameters").
struct CNIEnvironment {
    enum Command: String { case add = "ADD", del = "DEL", check = "CHECK", version = "VERSION", gc = "GC", status = "STATUS" }

    var command: Command
    var containerID: String
    var netns: String
    var ifname: String
    /// CNI_ARGS as KEY=VALUE pairs separated by ';' (K8S_POD_NAMESPACE, K8S_POD_NAME, MAC, ...).
    var args: [String: String]
    var path: [String]
    /// The whole environment, passed on unchanged to the IPAM plugin.
    var entries: [String]

    init(environment: [String: String], entries: [String]) throws(CNIError) {
        guard let raw = environment["CNI_COMMAND"], !raw.isEmpty else {
            throw CNIError(.invalidEnvironment, "CNI_COMMAND is not set", details: "expected one of ADD, DEL, CHECK, VERSION, GC, STATUS")
        }
        guard let command = Command(rawValue: raw) else {
            throw CNIError(.invalidEnvironment, "unknown CNI_COMMAND \(raw)", details: "expected one of ADD, DEL, CHECK, VERSION, GC, STATUS")
        }
        self.command = command
        containerID = environment["CNI_CONTAINERID"] ?? ""
        netns = environment["CNI_NETNS"] ?? ""
        ifname = environment["CNI_IFNAME"] ?? ""
        path = (environment["CNI_PATH"] ?? "").split(separator: ":").map(String.init).filter { !$0.isEmpty }
        self.entries = entries
        args = [:]
        for pair in (environment["CNI_ARGS"] ?? "").split(separator: ";") {
            guard let equals = pair.firstIndex(of: "=") else {
                throw CNIError(.invalidEnvironment, "CNI_ARGS must be KEY=VALUE pairs separated by ';'", details: "\"\(pair)\" has no '='")
            }
            args[String(pair[..<equals])] = String(pair[pair.index(after: equals)...])
        }

        switch command {
        case .add, .check, .del:
            guard !containerID.isEmpty else { throw CNIError(.invalidEnvironment, "CNI_CONTAINERID is not set") }
            guard containerID.utf8.allSatisfy(Naming.isNameByte) else {
                throw CNIError(.invalidEnvironment, "CNI_CONTAINERID may contain only letters, digits, '_', '.' and '-'", details: containerID)
            }
            guard !ifname.isEmpty else { throw CNIError(.invalidEnvironment, "CNI_IFNAME is not set") }
            if let problem = Naming.ifnameProblem(ifname) { throw CNIError(.invalidEnvironment, "CNI_IFNAME \(ifname) is invalid", details: problem) }
            if command != .del && netns.isEmpty { throw CNIError(.invalidEnvironment, "CNI_NETNS is not set") }
        case .version, .gc, .status:
            break
        }
    }
}

/// The network configuration from stdin, with this plugin's keys (README, "CNI plugin").
struct NetworkConfig {
    enum Mode: String { case server, client }

    /// The switch as the client of the pod's socket (the pod's QEMU `server=on`, DPDK
    /// virtio-user `server=1`), as OVS recommends with dpdkvhostuserclient: when the daemon
    /// restarts or dies (kill -9) it reconnects and the guest keeps its device, whereas a
    /// virtio-user client (`server=0`) cannot reconnect to a restarted server at all.
    static let defaultMode = Mode.client

    var raw: [UInt8]
    var json: JSONObject
    var cniVersion: String
    var name: String
    /// The daemon's API socket, directly in one of the install settings' allowed directories.
    var api: APISocket
    /// A bearer token file, under the same allow-list.
    var apiTokenFile: String?
    var socketDir: String
    /// The install settings' dataDirectory (attachment records for GC).
    var dataDir: String
    var mode: Mode
    var owner: String?
    var group: String?
    var permissions: UInt32?
    /// A MAC, "auto" for one derived from the container id and interface, or nil for none.
    var mac: String?
    var mtu: Int?
    var queues: Int?
    var features: JSONObject?
    var policy: PortPolicySettings
    /// Where the pod mounts its socket directory (e.g. the Deployment example's mountPath):
    /// the device-info file then names the socket as the pod sees it, else as the host does.
    var podSocketDir: String?
    /// runtimeConfig.CNIDeviceInfoFile (the NPWG "CNIDeviceInfoFile" capability): the file in
    /// the install settings' deviceInfoDirectory to describe the socket in.
    var deviceInfoFile: String?
    var ipamType: String?
    var prevResult: JSONObject?

    static let defaultAPI = "unix:///run/vhost-switch/api.sock"

    init(bytes: [UInt8], command: CNIEnvironment.Command, settings: InstallSettings) throws(CNIError) {
        raw = bytes
        let parsed: JSONValue
        do { parsed = try JSONValue.parse(bytes) } catch {
            throw CNIError(.decodingFailure, "cannot decode the network configuration", details: error.description)
        }
        guard let object = parsed.objectValue else { throw CNIError(.decodingFailure, "the network configuration must be a JSON object") }
        json = object

        guard let version = object["cniVersion"]?.stringValue, !version.isEmpty else {
            throw CNIError(.invalidNetworkConfig, "cniVersion is required")
        }
        guard CNIVersion.supported.contains(version) else {
            throw CNIError(.incompatibleVersion, "CNI version \(version) is not supported",
                           details: "supported: \(CNIVersion.supported.joined(separator: ", "))")
        }
        cniVersion = version
        name = object["name"]?.stringValue ?? ""

        func string(_ key: String) throws(CNIError) -> String? {
            guard let value = object[key], !value.isNull else { return nil }
            guard let text = value.stringValue else { throw CNIError(.invalidNetworkConfig, "\(key) must be a string") }
            return text
        }
        /// A user or group: a name or a numeric id, as a string or a number.
        func principal(_ key: String) throws(CNIError) -> String? {
            guard let value = object[key], !value.isNull else { return nil }
            if let id = value.intValue, id >= 0 { return String(id) }
            guard let text = value.stringValue, !text.isEmpty, text.utf8.count <= 32,
                  text.utf8.allSatisfy({ Naming.isNameByte($0) }) else {
                throw CNIError(.invalidNetworkConfig, "\(key) must be a user or group name or a numeric id")
            }
            return text
        }

        let apiText = try string("api") ?? Self.defaultAPI
        do { api = try APISocket(parsing: apiText) } catch { throw CNIError(.invalidNetworkConfig, "api \(apiText) is invalid", details: error.description) }
        if let problem = settings.allowListProblem(api.path) { throw CNIError(.invalidNetworkConfig, "api \(apiText) is not allowed", details: problem) }
        apiTokenFile = try string("apiTokenFile")
        if let file = apiTokenFile, let problem = settings.allowListProblem(file) {
            throw CNIError(.invalidNetworkConfig, "apiTokenFile \(file) is not allowed", details: problem)
        }
        socketDir = try string("socketDir") ?? "pods"
        if let problem = Naming.socketDirProblem(socketDir) { throw CNIError(.invalidNetworkConfig, "socketDir \(socketDir) is invalid", details: problem) }
        // Where root writes and GC reads attachment records is the administrator's choice.
        guard object["dataDir"] == nil else {
            throw CNIError(.invalidNetworkConfig, "dataDir is not a network configuration key", details: "set dataDirectory in \(InstallSettings.path)")
        }
        dataDir = settings.dataDirectory
        let modeText = try string("mode") ?? Self.defaultMode.rawValue
        guard let mode = Mode(rawValue: modeText) else { throw CNIError(.invalidNetworkConfig, "mode must be \"server\" or \"client\", not \"\(modeText)\"") }
        self.mode = mode
        owner = try principal("owner")
        group = try principal("group")
        if let value = object["permissions"], !value.isNull {
            guard let text = value.stringValue,
                  let parsed = UInt32(text.hasPrefix("0o") ? String(text.dropFirst(2)) : text, radix: 8), parsed <= 0o777 else {
                throw CNIError(.invalidNetworkConfig, "permissions must be an octal string such as \"0660\"")
            }
            permissions = parsed
        }
        mac = try string("mac")
        if let text = mac, text != "auto", !Naming.isMAC(text) {
            throw CNIError(.invalidNetworkConfig, "mac must look like 02:00:00:00:00:01 (or be \"auto\")", details: text)
        }
        mac = mac.map { $0.lowercased() }
        mtu = try integer(object, "mtu", 68...65535)
        queues = try integer(object, "queues", 1...128)
        if let value = object["features"], !value.isNull {
            guard let members = value.objectValue else { throw CNIError(.invalidNetworkConfig, "features must be an object such as {\"disable\": [\"mrg_rxbuf\"]}") }
            for key in members.keys {
                switch key {
                case "enable", "disable":
                    guard let items = members[key]?.arrayValue, items.allSatisfy({ $0.stringValue != nil }) else {
                        throw CNIError(.invalidNetworkConfig, "features.\(key) must be a list of feature names")
                    }
                case "mask":
                    guard members[key]?.stringValue != nil else { throw CNIError(.invalidNetworkConfig, "features.mask must be a hex string") }
                default:
                    throw CNIError(.invalidNetworkConfig, "unknown field features.\(key)", details: "features takes enable, disable and mask")
                }
            }
            features = members
        }
        if let value = object["ipam"], !value.isNull {
            guard let ipam = value.objectValue else { throw CNIError(.invalidNetworkConfig, "ipam must be an object") }
            if let type = ipam["type"]?.stringValue, !type.isEmpty {
                guard !type.contains("/"), type != ".", type != ".." else { throw CNIError(.invalidNetworkConfig, "ipam.type must be a plugin name, not a path") }
                ipamType = type
            } else if !ipam.keys.isEmpty {
                throw CNIError(.invalidNetworkConfig, "ipam.type is required when ipam is configured")
            }
        }
        prevResult = object["prevResult"]?.objectValue
        policy = try PortPolicySettings(object)
        podSocketDir = try string("podSocketDir")
        if let directory = podSocketDir, !InstallSettings.isCleanAbsolutePath(directory) || directory.utf8.count > 80 {
            throw CNIError(.invalidNetworkConfig, "podSocketDir must be an absolute path of at most 80 bytes without '.', '..' or empty components", details: directory)
        }

        // runtimeConfig.mac (the "mac" capability, e.g. from Multus) overrides the static MAC.
        if let runtimeMAC = object["runtimeConfig"]?["mac"]?.stringValue {
            guard Naming.isMAC(runtimeMAC) else { throw CNIError(.invalidNetworkConfig, "runtimeConfig.mac must look like 02:00:00:00:00:01") }
            mac = runtimeMAC.lowercased()
        }
        if let value = object["runtimeConfig"]?["CNIDeviceInfoFile"], !value.isNull {
            let name = value.stringValue.flatMap { file in file.lastIndex(of: "/").map { file[file.index(after: $0)...] } } ?? ""
            guard let file = value.stringValue, file == settings.deviceInfoDirectory + "/" + name, (1...255).contains(name.utf8.count),
                  name.utf8.allSatisfy(Naming.isNameByte), !name.hasPrefix(".") else {
                throw CNIError(.invalidNetworkConfig, "runtimeConfig.CNIDeviceInfoFile must be a file directly in \(settings.deviceInfoDirectory)",
                               details: "a name of letters, digits, '_', '.' and '-' not starting with '.'; got \(value.rendered().prefix(200))")
            }
            deviceInfoFile = file
        }

        if command == .add || command == .check || command == .gc {
            guard !name.isEmpty else { throw CNIError(.invalidNetworkConfig, "name is required") }
            guard Naming.isNetworkName(name) else {
                throw CNIError(.invalidNetworkConfig, "name must start with a letter or digit and contain only letters, digits, '_', '.' and '-'", details: name)
            }
        }
    }
}

/// Where the daemon's API is: its unix socket (the client gets it as `APIEndpoint.unix`).
/// TCP is not accepted: the address and the token sent to it would come from the tenant's
/// network configuration.
struct APISocket: CustomStringConvertible {
    var path: String

    struct ParseError: Error, CustomStringConvertible { var description: String }

    init(parsing text: String) throws(ParseError) {
        guard text.hasPrefix("unix://") else { throw ParseError(description: "use unix:///absolute/path/to/api.sock (the daemon's unix socket; TCP is not accepted)") }
        let path = String(text.dropFirst("unix://".count))
        guard path.hasPrefix("/"), path.utf8.count <= 107 else { throw ParseError(description: "use unix:///absolute/path/to/api.sock (at most 107 bytes)") }
        self.path = path
    }

    var description: String { "unix://" + path }
}
