import Foundation

/// A veth pair with one end in a fresh network namespace, for kernel peers in tests. The
/// other end stays in the host namespace, or goes into `outerNamespace` (a guest of a
/// `NetworkNode`). The names are unique per process; `destroy()` (and deinit) removes both.
/// Only addresses in the namespace's own private subnet are ever used.
public final class NetworkNamespaceFixture {
    public let namespace: String
    /// The end outside the namespace (the switch's af-packet port binds it): in
    /// `outerNamespace`, or in the host namespace when that is nil.
    public let hostInterface: String
    /// The end inside the namespace.
    public let namespaceInterface: String
    public let outerNamespace: String?
    private var destroyed = false

    /// nil when the machine cannot run it (not root, no `ip`), with the reason.
    public static func skipReason() -> String? {
        if getuid() != 0 { return "needs root for network namespaces and veth pairs" }
        if !FileManager.default.isExecutableFile(atPath: "/usr/sbin/ip") && !FileManager.default.isExecutableFile(atPath: "/sbin/ip") {
            return "iproute2 (ip) is not installed"
        }
        return nil
    }

    /// A suffix that keeps this process's namespace and interface names apart from other
    /// processes' (parallel test runs); short, since an interface name has 15 characters.
    public static func uniqueSuffix() -> String {
        String(getpid() % 10000) + String(Int.random(in: 0..<100))
    }

    /// `prefix` starts the namespace's name (a branch's tests can use their own);
    /// `outerNamespace` takes the outer end (nil: the host namespace).
    public init(tag: String, prefix: String = "vst", outerNamespace: String? = nil) throws {
        let unique = Self.uniqueSuffix()
        namespace = "\(prefix)-\(tag)-\(unique)"
        hostInterface = "vh\(tag.prefix(3))\(unique)"
        namespaceInterface = "vn\(tag.prefix(3))\(unique)"
        self.outerNamespace = outerNamespace
        try Self.ip(["netns", "add", namespace])
        try Self.ip(["link", "add", hostInterface, "type", "veth", "peer", "name", namespaceInterface])
        try Self.ip(["link", "set", namespaceInterface, "netns", namespace])
        if let outerNamespace { try Self.ip(["link", "set", hostInterface, "netns", outerNamespace]) }
        try Self.ip(Self.inNamespace(outerNamespace) + ["link", "set", hostInterface, "up"])
        try inside(["ip", "link", "set", "lo", "up"])
        try inside(["ip", "link", "set", namespaceInterface, "up"])
    }

    deinit { destroy() }

    /// Gives the namespace end an address such as "10.200.7.1/24".
    public func assignAddress(_ cidr: String) throws {
        try inside(["ip", "addr", "add", cidr, "dev", namespaceInterface])
    }

    /// Runs a command inside the namespace; returns its exit status and output.
    @discardableResult
    public func inside(_ command: [String], check: Bool = true) throws -> (status: Int32, output: String) {
        try Self.run(in: namespace, command, check: check)
    }

    /// A statistics counter of the namespace's end, e.g. "rx_packets".
    public func counter(_ name: String) throws -> UInt64 {
        try Self.interfaceCounter(namespaceInterface, name, in: namespace)
    }

    public func destroy() {
        guard !destroyed else { return }
        destroyed = true
        _ = try? Self.run(["/usr/sbin/ip"] + Self.inNamespace(outerNamespace) + ["link", "del", hostInterface], check: false)
        _ = try? Self.run(["/usr/sbin/ip", "netns", "del", namespace], check: false)
    }

    /// `ip`'s arguments that make it act in `namespace` (none for the host's).
    static func inNamespace(_ namespace: String?) -> [String] {
        namespace.map { ["-n", $0] } ?? []
    }

    /// Runs a command inside `namespace` (`ip netns exec`, which also mounts that namespace's
    /// /sys, so /sys/class/net shows its interfaces).
    @discardableResult
    public static func run(in namespace: String, _ command: [String], check: Bool = true) throws -> (status: Int32, output: String) {
        try run(["/usr/sbin/ip", "netns", "exec", namespace] + command, check: check)
    }

    /// A statistics counter ("rx_packets", "tx_packets", ...) of `interface` in `namespace`.
    public static func interfaceCounter(_ interface: String, _ name: String, in namespace: String) throws -> UInt64 {
        let text = try run(in: namespace, ["cat", "/sys/class/net/\(interface)/statistics/\(name)"]).output
        guard let value = UInt64(text.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            throw FixtureError("\(interface) in \(namespace): \(name) is not a number: \(text)")
        }
        return value
    }

    /// Whether `interface` (in the test's own namespace) has an XDP program attached, as
    /// `ip -d link show` says: af-xdp ports must leave none behind.
    public static func hasXDPProgram(_ interface: String) throws -> Bool {
        try ip(["-d", "link", "show", "dev", interface]).output.contains("prog/xdp")
    }

    @discardableResult
    public static func ip(_ arguments: [String]) throws -> (status: Int32, output: String) {
        try run(["/usr/sbin/ip"] + arguments, check: true)
    }

    @discardableResult
    public static func run(_ command: [String], check: Bool, environment: [String: String]? = nil) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: command[0])
        process.arguments = Array(command.dropFirst())
        if let environment { process.environment = environment }
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let output = String(decoding: data, as: UTF8.self)
        if check && process.terminationStatus != 0 {
            throw FixtureError("\(command.joined(separator: " ")) failed (\(process.terminationStatus)): \(output)")
        }
        return (process.terminationStatus, output)
    }

    public struct FixtureError: Error, CustomStringConvertible {
        public var description: String
        init(_ description: String) { self.description = description }
    }
}
