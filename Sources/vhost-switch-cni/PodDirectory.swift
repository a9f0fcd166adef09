import CNISystem
import Glibc
import VhostSystem

/// The per-pod directory that holds a pod's vhost-user sockets, on the host:
/// <socketDirectory>/<socketDir>/<pod directory>/<ifname>.sock. Pods can write below
/// socketDirectory, so every step is an openat that follows no symlink, and the plugin only
/// removes things from a directory it created itself and marked with `markerName`.
struct PodDirectory {
    /// A regular file owned by the plugin's user with exactly `markerContents`.
    static let markerName = ".vhost-switch-cni"
    static let markerContents = Array("vhost-switch-cni: created this pod socket directory\n".utf8)

    /// The daemon's socket directory on the host (install settings).
    let root: String
    /// The socket path relative to `root`: directories, then the socket's file name.
    let socketPath: String

    private var components: [String] { socketPath.split(separator: "/").map(String.init) }

    /// ADD: creates the missing directories on the way to the socket and marks the pod's own
    /// directory when this call created it. An existing directory without the marker (made
    /// by someone else) is used but never marked, so DEL leaves it and its contents alone.
    func prepare() throws(CNIError) {
        var names = components
        names.removeLast()
        guard let podName = names.popLast() else { return }
        var directory: DirectoryHandle
        do { directory = try DirectoryHandle.open(root, followLinks: true) } catch {
            guard error.noSuchFile else { throw CNIError(.ioFailure, "cannot open the socket directory \(root)", details: error.description) }
            throw CNIError(.tryAgainLater, "the vhost-switch daemon is not ready: its socket directory \(root) does not exist",
                           details: "is vhost-switchd running on this node? (socketDirectory in \(InstallSettings.path))")
        }
        do throws(SystemError) {
            for name in names {
                try directory.makeDirectory(name)
                directory = try directory.child(name)
            }
            let created = try directory.makeDirectory(podName)
            let pod = try directory.child(podName)
            if created { try pod.createFile(Self.markerName, Self.markerContents, permissions: 0o644) }
        } catch {
            throw CNIError(.ioFailure, "cannot prepare the socket directory for \(root)/\(socketPath)",
                           details: "\(error) (a symlink or a file where a directory belongs is refused)")
        }
    }

    /// DEL and GC: when the pod directory is one this plugin created, removes the socket the
    /// pod's front-end left there for this interface (`removeSocket`, client mode; only a
    /// socket, never a symlink), then the marker and the directory once nothing else is in
    /// it. Anything else is left as it is, with a note on stderr.
    func cleanUp(removeSocket: Bool) {
        var names = components
        guard let socketName = names.popLast(), let podName = names.popLast() else { return }
        do throws(SystemError) {
            var parent = try DirectoryHandle.open(root, followLinks: true)
            for name in names { parent = try parent.child(name) }
            let pod = try parent.child(podName)
            guard try isMarked(pod) else {
                note("\(pod.path) was not created by vhost-switch-cni; nothing removed")
                return
            }
            if removeSocket, try pod.entry(socketName)?.kind == .socket { try pod.remove(socketName) }
            let left = try pod.names()
            guard left == [Self.markerName] else { return }
            try pod.remove(Self.markerName)
            try parent.removeDirectory(podName)
        } catch {
            if error.noSuchFile { return }
            note("left \(root)/\(socketPath) and its directory as they are: \(error)")
        }
    }

    private func isMarked(_ pod: DirectoryHandle) throws(SystemError) -> Bool {
        guard let marker = try pod.entry(Self.markerName), marker.kind == .regular, marker.ownerID == geteuid(),
              try pod.status().ownerID == geteuid() else { return false }
        return try pod.readFile(Self.markerName, maxBytes: 256) == Self.markerContents
    }

    private func note(_ text: String) { CurrentProcess.writeStandardError("vhost-switch-cni: \(text)\n") }
}
