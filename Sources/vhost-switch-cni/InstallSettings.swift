import CNISystem
import ManagementClient
import VhostSystem

/// What the node's administrator fixed when installing the plugin, as opposed to the network
/// configuration, which a tenant writes: which API sockets and token files the plugin may use,
/// where the daemon's vhost-user sockets are on the host, and where device-info files go.
///
/// Read from /etc/cni/net.d/vhost-switch.d/vhost-switch-cni.json (a subdirectory, so no
/// runtime mistakes it for a network configuration) when that file exists; it must be a
/// regular file owned by root and writable by root only. Without it, the defaults below
/// match deploy/kubernetes/daemonset.yaml. Format (every key optional):
///
///     {"allowedDirectories": ["/run/vhost-switch"],
///      "socketDirectory": "/run/vhost-switch/sockets",
///      "deviceInfoDirectory": "/var/run/k8s.cni.cncf.io/devinfo/cni",
///      "dataDirectory": "/var/lib/cni/vhost-switch"}
struct InstallSettings: Equatable {
    static let path = "/etc/cni/net.d/vhost-switch.d/vhost-switch-cni.json"
    /// Names another file instead (tests, non-standard installs). The runtime's environment
    /// is the node administrator's, never a tenant's; the file gets the same checks.
    static let pathVariable = "VHOST_SWITCH_CNI_SETTINGS"

    /// `api` must be unix://<directory>/<file> and `apiTokenFile` <directory>/<file> with
    /// <directory> exactly one of these (no subdirectories: pods can write below
    /// socketDirectory, never directly in the daemon's run directory).
    var allowedDirectories = ["/run/vhost-switch"]
    /// The daemon's --socket-dir as seen on the host; `socketDir` is relative to it.
    var socketDirectory = "/run/vhost-switch/sockets"
    /// The only directory a runtime's CNIDeviceInfoFile may be in (NPWG device-info spec 4.2).
    var deviceInfoDirectory = "/var/run/k8s.cni.cncf.io/devinfo/cni"
    /// Where the plugin keeps its attachment records for GC.
    var dataDirectory = "/var/lib/cni/vhost-switch"

    /// The settings file named by the environment, or the fixed one; the defaults when absent.
    static func load(environment: [String: String]) throws(CNIError) -> InstallSettings {
        let file = environment[pathVariable].flatMap { $0.isEmpty ? nil : $0 } ?? path
        guard let bytes = try readRootOwnedFile(file) else { return InstallSettings() }
        return try InstallSettings(parsing: bytes, from: file)
    }

    init() {}

    init(parsing bytes: [UInt8], from file: String) throws(CNIError) {
        func invalid(_ message: String) -> CNIError { CNIError(.invalidEnvironment, "the plugin settings \(file) are invalid", details: message) }
        guard let object = (try? JSONValue.parse(bytes))?.objectValue else { throw invalid("not a JSON object") }
        let keys = ["allowedDirectories", "socketDirectory", "deviceInfoDirectory", "dataDirectory"]
        if let key = object.keys.first(where: { !keys.contains($0) }) { throw invalid("unknown key \(key) (\(keys.joined(separator: ", ")))") }
        func directory(_ value: JSONValue?, _ key: String) throws(CNIError) -> String? {
            guard let value else { return nil }
            guard let text = value.stringValue, Self.isCleanAbsolutePath(text) else {
                throw invalid("\(key) must be an absolute path without '.', '..', empty components or a trailing '/'")
            }
            return text
        }
        if let value = object["allowedDirectories"] {
            guard let items = value.arrayValue, !items.isEmpty, items.count <= 16 else { throw invalid("allowedDirectories must be a list of 1 to 16 directories") }
            var directories: [String] = []
            for item in items { if let text = try directory(item, "allowedDirectories[]") { directories.append(text) } }
            allowedDirectories = directories
        }
        socketDirectory = try directory(object["socketDirectory"], "socketDirectory") ?? socketDirectory
        deviceInfoDirectory = try directory(object["deviceInfoDirectory"], "deviceInfoDirectory") ?? deviceInfoDirectory
        dataDirectory = try directory(object["dataDirectory"], "dataDirectory") ?? dataDirectory
    }

    /// Nil when `path` is a file directly in an allowed directory; else why it is refused.
    func allowListProblem(_ path: String) -> String? {
        guard Self.isCleanAbsolutePath(path), let slash = path.lastIndex(of: "/") else {
            return "it must be an absolute path without '.', '..' or empty components"
        }
        let directory = String(path[..<slash])
        guard allowedDirectories.contains(directory) else {
            return "it is not directly in one of the allowed directories \(allowedDirectories.joined(separator: ", ")) (set by the node's administrator in \(Self.path))"
        }
        return nil
    }

    /// "/a/b": absolute, no empty, "." or ".." components, no trailing '/', no control bytes.
    static func isCleanAbsolutePath(_ path: String) -> Bool {
        guard path.hasPrefix("/"), path.utf8.count > 1, path.utf8.count <= 4096, !path.hasSuffix("/"),
              !path.utf8.contains(where: { $0 < 0x20 || $0 == 0x7F }) else { return false }
        return path.dropFirst().split(separator: "/", omittingEmptySubsequences: false).allSatisfy { !$0.isEmpty && $0 != "." && $0 != ".." }
    }

    /// The file, if it exists: a regular file (no symlink in its last component) owned by
    /// root and writable by root only, in a directory of the same kind.
    private static func readRootOwnedFile(_ file: String) throws(CNIError) -> [UInt8]? {
        guard isCleanAbsolutePath(file), let slash = file.lastIndex(of: "/") else {
            throw CNIError(.invalidEnvironment, "\(pathVariable) must be an absolute path", details: file)
        }
        let directoryPath = slash == file.startIndex ? "/" : String(file[..<slash])
        let name = String(file[file.index(after: slash)...])
        let directory: DirectoryHandle
        let entry: DirectoryHandle.Entry
        let parent: DirectoryHandle.Entry
        do throws(SystemError) {
            do { directory = try DirectoryHandle.open(directoryPath, followLinks: true) } catch {
                if error.noSuchFile { return nil }
                throw error
            }
            guard let found = try directory.entry(name) else { return nil }
            entry = found
            parent = try directory.status()
        } catch {
            throw CNIError(.ioFailure, "cannot read the plugin settings \(file)", details: error.description)
        }
        for (what, item) in [("file", entry), ("directory", parent)] where item.ownerID != 0 || item.mode & 0o022 != 0 {
            throw CNIError(.invalidEnvironment, "the plugin settings \(what) of \(file) must be owned by root and writable by root only",
                           details: "owner \(item.ownerID), mode \(String(item.mode, radix: 8))")
        }
        guard entry.kind == .regular else { throw CNIError(.invalidEnvironment, "the plugin settings \(file) must be a regular file, not a symlink") }
        do { return try directory.readFile(name, maxBytes: 65536) } catch {
            throw CNIError(.ioFailure, "cannot read the plugin settings \(file)", details: error.description)
        }
    }
}
