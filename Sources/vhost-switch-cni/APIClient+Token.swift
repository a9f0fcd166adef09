import CNISystem
import ManagementClient
import VhostSystem

extension APIClient {
    /// The token in `path` (already checked against the allow-list): a regular file, not a
    /// symlink, holding one line.
    static func readToken(_ path: String?) throws(CNIError) -> String? {
        guard let path, let slash = path.lastIndex(of: "/") else { return nil }
        let bytes: [UInt8]
        do {
            bytes = try DirectoryHandle.open(slash == path.startIndex ? "/" : String(path[..<slash]), followLinks: true)
                .readFile(String(path[path.index(after: slash)...]), maxBytes: 4096)
        } catch {
            if error.noSuchFile { throw CNIError(.invalidNetworkConfig, "apiTokenFile \(path) does not exist") }
            throw CNIError(.ioFailure, "cannot read apiTokenFile \(path)", details: "\(error) (a symlink or anything but a regular file is refused)")
        }
        let token = String(decoding: bytes, as: UTF8.self).trimmingSpaces()
        guard !token.isEmpty, !token.contains("\n"), !token.contains("\r") else {
            throw CNIError(.invalidNetworkConfig, "apiTokenFile \(path) must hold one token on one line")
        }
        return token
    }
}
