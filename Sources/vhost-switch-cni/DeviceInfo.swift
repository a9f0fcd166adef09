import CNISystem
import ManagementClient
import VhostSystem

/// The NPWG device-info file (k8snetworkplumbingwg device-info-spec 1.1.0) for a vhost-user
/// attachment, written on ADD to the runtime's CNIDeviceInfoFile so that Multus copies it
/// into the pod's network-status annotation, where DPDK and KubeVirt find the socket. Multus
/// deletes the file on DEL (spec 4.2.1).
enum DeviceInfo {
    static let specVersion = "1.1.0"

    /// `mode` in the spec is the pod's side: "client" when the host (here the switch, mode
    /// "server") creates the socket and the pod attaches, "server" when the pod's application
    /// creates it and the switch (mode "client") attaches.
    static func document(switchMode: NetworkConfig.Mode, socketPath: String) -> JSONValue {
        let podMode = switchMode == .server ? "client" : "server"
        return .object(["type": .string("vhost-user"), "version": .string(specVersion),
                        "vhost-user": .object(["mode": .string(podMode), "path": .string(socketPath)])])
    }

    /// Writes `document` to `file` (already checked to be directly in `directory`), creating
    /// `directory` when it is missing (spec 5.1.2), replacing the file atomically.
    static func write(_ document: JSONValue, to file: String, directory: String) throws(CNIError) {
        let name = String(file.split(separator: "/").last ?? "")
        do throws(SystemError) {
            try FileSystem.makeDirectoryTree(directory)
            try DirectoryHandle.open(directory).replaceFile(name, Array((document.rendered() + "\n").utf8), permissions: 0o644)
        } catch {
            throw CNIError(.ioFailure, "cannot write the device-info file \(file)", details: error.description)
        }
    }
}
