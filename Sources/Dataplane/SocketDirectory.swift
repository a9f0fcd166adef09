import VhostSystem

/// The directory every vhost-user socket lives in. Paths given by users are confined to it:
/// no '..', no symlinks on the way, no absolute path elsewhere.
public struct SocketDirectory: Sendable {
    public let root: String

    public init(root: String) {
        var trimmed = root
        while trimmed.count > 1 && trimmed.hasSuffix("/") { trimmed.removeLast() }
        self.root = trimmed
    }

    public struct PathError: Error, Equatable, CustomStringConvertible {
        public var message: String
        public var description: String { message }
    }

    /// The absolute path for `userPath`, or a reason it is refused.
    public func resolve(_ userPath: String) throws(PathError) -> String {
        if userPath.isEmpty { throw PathError(message: "socket path must not be empty") }
        if userPath.utf8.contains(where: { $0 < 0x20 || $0 == 0x7F }) { throw PathError(message: "socket path contains control characters") }
        var relative = userPath
        if userPath.hasPrefix("/") {
            guard userPath.hasPrefix(root + "/") else { throw PathError(message: "socket path \(userPath) is outside the socket directory \(root)") }
            relative = String(userPath.dropFirst(root.count + 1))
        }
        let components = relative.split(separator: "/", omittingEmptySubsequences: false)
        if components.isEmpty || relative.isEmpty { throw PathError(message: "socket path names no file") }
        if components.count > Self.maxComponents { throw PathError(message: "socket path has more than \(Self.maxComponents) components") }
        for component in components {
            if let problem = Self.componentProblem(component) { throw PathError(message: "socket path component \"\(component)\" \(problem)") }
        }
        let absolute = root + "/" + components.joined(separator: "/")
        if absolute.utf8.count > UnixSocket.maxPathLength {
            throw PathError(message: "socket path longer than \(UnixSocket.maxPathLength) bytes once placed in \(root)")
        }
        return absolute
    }

    /// The rule of openapi/vhost-switch.yaml's socket path pattern, one component at a time:
    /// 1-64 bytes of [A-Za-z0-9_.-], not starting with '.' or '-' (so no "." or "..").
    public static let maxComponents = 8
    public static let maxComponentLength = 64

    static func componentProblem(_ component: Substring) -> String? {
        guard let first = component.utf8.first else { return "is empty (a doubled or trailing '/')" }
        if component.utf8.count > maxComponentLength { return "is longer than \(maxComponentLength) bytes" }
        if first == UInt8(ascii: ".") || first == UInt8(ascii: "-") { return "starts with '.' or '-'" }
        let allowed = component.utf8.allSatisfy { byte in
            (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                || byte == 0x2D || byte == 0x2E || byte == 0x5F
        }
        return allowed ? nil : "may contain only letters, digits, '.', '-' and '_'"
    }

    /// Creates the directories between the root and the socket (per-pod directories) and
    /// refuses when any existing component below the root is a symlink.
    public func prepareParent(of absolute: String) throws(PathError) {
        var components = absolute.dropFirst(root.count + 1).split(separator: "/")
        components.removeLast()
        do {
            try FileSystem.makeDirectoryTree(root)
        } catch {
            throw PathError(message: "cannot create the socket directory: \(error)")
        }
        var current = root
        for component in components {
            current += "/" + component
            switch FileSystem.kind(at: current) {
            case .directory: continue
            case .symlink: throw PathError(message: "\(current) is a symlink")
            case nil:
                do { try FileSystem.makeDirectory(current) } catch { throw PathError(message: "cannot create \(current): \(error)") }
            default: throw PathError(message: "\(current) exists and is not a directory")
            }
        }
        if FileSystem.kind(at: absolute) == .symlink {
            throw PathError(message: "socket path \(absolute) is a symlink")
        }
    }
}
