/// How a pod interface maps onto a switch port and a socket path. Everything here is a pure
/// function of the CNI parameters, so ADD, CHECK and DEL (even after a plugin upgrade or on
/// another call) agree without any local state.
enum Naming {
    /// Characters the daemon allows in port names: [A-Za-z0-9._-].
    static func isNameByte(_ byte: UInt8) -> Bool {
        (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
            || byte == 0x2D || byte == 0x2E || byte == 0x5F
    }

    static let maxPortName = 64
    static let containerIDPrefix = 12
    /// Longest per-pod directory name; longer namespace/name pairs fall back to the container id.
    static let maxPodDirectory = 48

    /// "<first 12 characters of the container id>-<ifname>", e.g. "3f2a9c1d7b4e-net1".
    static func portName(containerID: String, ifname: String) -> String {
        let prefix = sanitized(String(containerID.prefix(containerIDPrefix)))
        var name = prefix + "-" + sanitized(ifname)
        if name.utf8.count > maxPortName { name = String(decoding: Array(name.utf8).prefix(maxPortName), as: UTF8.self) }
        return name
    }

    /// The per-pod directory (under socketDir): "<namespace>_<pod name>" when the runtime
    /// passes K8S_POD_NAMESPACE and K8S_POD_NAME in CNI_ARGS (a pod spec can name that host
    /// path), else the first 12 characters of the container id.
    static func podDirectory(containerID: String, args: [String: String]) -> String {
        if let namespace = args["K8S_POD_NAMESPACE"], let pod = args["K8S_POD_NAME"], !namespace.isEmpty, !pod.isEmpty {
            let candidate = namespace + "_" + pod
            if candidate.utf8.count <= maxPodDirectory, candidate.utf8.allSatisfy(isNameByte), !candidate.hasPrefix(".") {
                return candidate
            }
        }
        return sanitized(String(containerID.prefix(containerIDPrefix)))
    }

    /// The socket path relative to the daemon's socket directory:
    /// "<socketDir>/<pod directory>/<ifname>.sock".
    static func socketPath(socketDir: String, containerID: String, ifname: String, args: [String: String]) -> String {
        let file = sanitized(ifname) + ".sock"
        let pod = podDirectory(containerID: containerID, args: args)
        return socketDir.isEmpty ? pod + "/" + file : socketDir + "/" + pod + "/" + file
    }

    /// Maps every byte the daemon would refuse to '_' and keeps the first from being '.' or '-'.
    static func sanitized(_ text: String) -> String {
        var bytes = text.utf8.map { isNameByte($0) ? $0 : UInt8(ascii: "_") }
        if let first = bytes.first, first == UInt8(ascii: ".") || first == UInt8(ascii: "-") { bytes[0] = UInt8(ascii: "_") }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Linux interface name rules (the spec asks plugins to keep to them): 1-15 bytes, not
    /// "." or "..", no '/', ':' or whitespace.
    static func ifnameProblem(_ name: String) -> String? {
        if name.utf8.count > 15 { return "longer than 15 bytes" }
        if name == "." || name == ".." { return "\".\" and \"..\" are not interface names" }
        if name.utf8.contains(where: { $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: ":") || $0 <= 0x20 || $0 == 0x7F }) {
            return "contains '/', ':', whitespace or a control character"
        }
        return nil
    }

    /// socketDir: relative to the daemon's socket directory, components of [A-Za-z0-9._-],
    /// no "." or "..". Empty puts pod directories at the socket directory's top.
    static func socketDirProblem(_ dir: String) -> String? {
        if dir.isEmpty { return nil }
        if dir.hasPrefix("/") { return "must be relative to the daemon's socket directory (--socket-dir)" }
        if dir.utf8.count > 48 { return "longer than 48 bytes (socket paths are limited to 107 bytes)" }
        let components = dir.split(separator: "/", omittingEmptySubsequences: false)
        // With the pod directory and the socket file: the daemon's 8-component limit.
        if components.count > 6 { return "more than 6 path components" }
        for component in components {
            if component.isEmpty || component.hasPrefix(".") || component.hasPrefix("-") {
                return "empty path component, or one starting with '.' or '-'"
            }
            if !component.utf8.allSatisfy(isNameByte) { return "path components may contain only letters, digits, '.', '_' and '-'" }
        }
        return nil
    }

    static func isMAC(_ text: String) -> Bool {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        return parts.count == 6 && parts.allSatisfy { $0.count == 2 && $0.allSatisfy(\.isHexDigit) }
    }

    /// Network names (spec): alphanumeric first, then alphanumerics, '_', '.' and '-'.
    static func isNetworkName(_ name: String) -> Bool {
        guard let first = name.utf8.first, isNameByte(first), first != UInt8(ascii: "."), first != UInt8(ascii: "-"),
              first != UInt8(ascii: "_") else { return false }
        return name.utf8.allSatisfy(isNameByte)
    }

    /// A locally administered unicast MAC (02:xx:xx:xx:xx:xx) from an FNV-1a hash of the
    /// container id and interface name: stable across ADD retries and CHECK.
    static func derivedMAC(containerID: String, ifname: String) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in (containerID + "/" + ifname).utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        var bytes: [UInt8] = [0x02]
        for shift in stride(from: 32, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: hash >> UInt64(shift))) }
        return bytes.map { byte in
            let hex = String(byte, radix: 16)
            return hex.count == 1 ? "0" + hex : hex
        }.joined(separator: ":")
    }
}
