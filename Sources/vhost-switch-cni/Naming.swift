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
    /// Longest per-pod directory name: a longer namespace/name pair is an error, never renamed.
    static let maxPodDirectory = 48

    /// "<first 12 characters of the container id>-<ifname>", e.g. "3f2a9c1d7b4e-net1".
    static func portName(containerID: String, ifname: String) -> String {
        let prefix = sanitized(String(containerID.prefix(containerIDPrefix)))
        var name = prefix + "-" + ifname
        if name.utf8.count > maxPortName { name = String(decoding: Array(name.utf8).prefix(maxPortName), as: UTF8.self) }
        return name
    }

    /// The per-pod directory (under socketDir): "<namespace>_<pod name>" when the runtime
    /// passes K8S_POD_NAMESPACE and K8S_POD_NAME in CNI_ARGS (a pod spec can name that
    /// directory with subPathExpr), or, from runtimes that pass neither (not Kubernetes), the
    /// first 12 characters of the container id. A pair that cannot be a directory name is an
    /// error: a silently different directory would leave the pod an empty mount.
    static func podDirectory(containerID: String, args: [String: String]) throws(CNIError) -> String {
        let namespace = args["K8S_POD_NAMESPACE"], pod = args["K8S_POD_NAME"]
        if namespace == nil && pod == nil { return sanitized(String(containerID.prefix(containerIDPrefix))) }
        guard let namespace, let pod, !namespace.isEmpty, !pod.isEmpty else {
            throw CNIError(.invalidEnvironment, "CNI_ARGS has only one of K8S_POD_NAMESPACE and K8S_POD_NAME",
                           details: "the per-pod socket directory is <namespace>_<pod name>; both are needed")
        }
        let candidate = namespace + "_" + pod
        guard candidate.utf8.allSatisfy(isNameByte), !candidate.hasPrefix(".") else {
            throw CNIError(.invalidEnvironment, "the pod's socket directory \(candidate.prefix(100)) is not a valid directory name",
                           details: "K8S_POD_NAMESPACE and K8S_POD_NAME may contain only letters, digits, '_', '.' and '-'")
        }
        guard candidate.utf8.count <= maxPodDirectory else {
            throw CNIError(.invalidEnvironment, "the pod's socket directory \(candidate) is \(candidate.utf8.count) bytes, more than \(maxPodDirectory)",
                           details: "unix socket paths hold at most 107 bytes: shorten the namespace or pod name (a Deployment's pods are named <deployment>-<hash>-<suffix>)")
        }
        return candidate
    }

    /// The socket path relative to the daemon's socket directory:
    /// "<socketDir>/<pod directory>/<ifname>.sock".
    static func socketPath(socketDir: String, containerID: String, ifname: String, args: [String: String]) throws(CNIError) -> String {
        let file = ifname + ".sock"
        let pod = try podDirectory(containerID: containerID, args: args)
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
        // It names the port and the socket file as it is: no byte is silently replaced.
        if !name.utf8.allSatisfy(isNameByte) || name.hasPrefix("-") { return "this plugin takes only letters, digits, '_', '.' and '-' (not first)" }
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

    /// A MAC whose first octet has the group bit clear (allowed_macs takes unicast only).
    static func isUnicastMAC(_ text: String) -> Bool {
        guard isMAC(text), let first = UInt8(text.prefix(2), radix: 16) else { return false }
        return first & 1 == 0
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
