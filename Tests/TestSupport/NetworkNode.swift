import Foundation

/// A network namespace standing in for a cluster node: its own vhost-switchd (with its own API
/// socket and socket directory), an underlay interface with an address, Linux VXLAN devices
/// and guests (each a `NetworkNamespaceFixture` whose outer end is in the node). Two nodes are
/// joined by `joinUnderlay`. IPv6 is off in the node and its guests, so the only frames on the
/// wire are the test's: no router solicitations or MLD reports move a counter that must stay still.
///
///     let a = try NetworkNode(tag: "a"), b = try NetworkNode(tag: "b")
///     try NetworkNode.joinUnderlay(a, b, subnet: "10.76.0", mtu: 1550)
///     let tunnel = try a.addVXLAN(vni: 100, remote: b.underlayAddress!, mtu: 1500)
///     try a.startDaemon()
///     try a.attach(interface: tunnel, port: "vx100", vlan: 10)
public final class NetworkNode {
    public let namespace: String
    /// The daemon running in the namespace, once `startDaemon` ran.
    public private(set) var daemon: SwitchDaemonProcess?
    /// The node's end of the underlay veth (the same name in every node).
    public let underlayInterface = "underlay"
    public private(set) var underlayAddress: String?
    public private(set) var guests: [NetworkNamespaceFixture] = []
    private var destroyed = false

    /// VXLAN's IANA port (RFC 7348), which Linux does not use by default (it uses 8472).
    public static let vxlanPort = 4789

    /// nil when two nodes with VXLAN devices and a daemon can run here; otherwise why not,
    /// printed: root and iproute2, a built daemon, and a kernel that makes VXLAN devices.
    public static func printedSkipReason(_ test: String = #function) -> String? {
        if let reason = NetworkNamespaceFixture.skipReason() {
            print("SKIP \(test): \(reason)")
            return reason
        }
        if let reason = IntegrationEnvironment.printedDaemonSkipReason(test) { return reason }
        if let reason = vxlanUnavailableReason() {
            print("SKIP \(test): \(reason)")
            return reason
        }
        return nil
    }

    /// Tries a VXLAN device in a scratch namespace (the module may be missing or not loadable).
    static func vxlanUnavailableReason() -> String? {
        let scratch = "segx-probe-\(NetworkNamespaceFixture.uniqueSuffix())"
        guard (try? NetworkNamespaceFixture.ip(["netns", "add", scratch])) != nil else { return "cannot add a network namespace" }
        defer { _ = try? NetworkNamespaceFixture.run(["/usr/sbin/ip", "netns", "del", scratch], check: false) }
        let probe = try? NetworkNamespaceFixture.run(
            ["/usr/sbin/ip", "-n", scratch, "link", "add", "vxprobe", "type", "vxlan", "id", "1", "dstport", "\(vxlanPort)"], check: false)
        guard let probe, probe.status == 0 else {
            return "the kernel makes no VXLAN devices (modprobe vxlan): \(probe?.output ?? "ip failed")"
        }
        return nil
    }

    /// A fresh namespace `segx-<tag>-<unique>` with loopback up and IPv6 off.
    public init(tag: String) throws {
        namespace = "segx-\(tag)-\(NetworkNamespaceFixture.uniqueSuffix())"
        try NetworkNamespaceFixture.ip(["netns", "add", namespace])
        try run(["ip", "link", "set", "lo", "up"])
        try Self.disableIPv6(in: namespace)
    }

    deinit { destroy() }

    static func disableIPv6(in namespace: String) throws {
        for scope in ["all", "default"] {
            try NetworkNamespaceFixture.run(in: namespace, ["sysctl", "-q", "-w", "net.ipv6.conf.\(scope).disable_ipv6=1"])
        }
    }

    /// Runs a command inside the node.
    @discardableResult
    public func run(_ command: [String], check: Bool = true) throws -> (status: Int32, output: String) {
        try NetworkNamespaceFixture.run(in: namespace, command, check: check)
    }

    /// A statistics counter ("rx_packets", "tx_packets", ...) of one of the node's interfaces.
    public func counter(_ interface: String, _ name: String) throws -> UInt64 {
        try NetworkNamespaceFixture.interfaceCounter(interface, name, in: namespace)
    }

    /// A veth pair between the two nodes, `<subnet>.1/24` on `a` and `<subnet>.2/24` on `b`,
    /// both ends with `mtu`.
    public static func joinUnderlay(_ a: NetworkNode, _ b: NetworkNode, subnet: String, mtu: Int) throws {
        try NetworkNamespaceFixture.ip(["link", "add", a.underlayInterface, "netns", a.namespace, "mtu", "\(mtu)", "type", "veth",
                                        "peer", "name", b.underlayInterface, "netns", b.namespace, "mtu", "\(mtu)"])
        for (node, host) in [(a, 1), (b, 2)] {
            let address = "\(subnet).\(host)"
            try node.run(["ip", "addr", "add", address + "/24", "dev", node.underlayInterface])
            try node.run(["ip", "link", "set", node.underlayInterface, "up"])
            node.underlayAddress = address
        }
    }

    /// A VXLAN device `vx<vni>` to `remote` over the underlay (no learning: the one remote
    /// gets every frame, as a static per-node configuration would), up. Returns its name.
    @discardableResult
    public func addVXLAN(vni: Int, remote: String, mtu: Int) throws -> String {
        guard let underlayAddress else { throw NetworkNamespaceFixture.FixtureError("\(namespace) has no underlay yet") }
        let name = "vx\(vni)"
        try run(["ip", "link", "add", name, "mtu", "\(mtu)", "type", "vxlan", "id", "\(vni)", "local", underlayAddress,
                 "remote", remote, "dstport", "\(Self.vxlanPort)", "nolearning"])
        try run(["ip", "link", "set", name, "up"])
        return name
    }

    /// A guest: a namespace `segx-<tag>-<unique>` behind a veth whose outer end is in this
    /// node (bind it with `attach`), with `address` (CIDR) and IPv6 off.
    public func addGuest(tag: String, address: String) throws -> NetworkNamespaceFixture {
        let guest = try NetworkNamespaceFixture(tag: tag, prefix: "segx", outerNamespace: namespace)
        guests.append(guest)
        try Self.disableIPv6(in: guest.namespace)
        try guest.assignAddress(address)
        return guest
    }

    /// Starts this node's daemon in the namespace and waits for its API.
    @discardableResult
    public func startDaemon() throws -> SwitchDaemonProcess {
        let daemon = try SwitchDaemonProcess(networkNamespace: namespace)
        self.daemon = daemon
        try daemon.start()
        try daemon.waitUntilHealthy()
        return daemon
    }

    /// POST /v1/ports: an af-packet port on `interface`, on access VLAN `vlan` (nil: the
    /// untagged default segment). Throws with the daemon's reply unless it is 201.
    public func attach(interface: String, port: String, vlan: Int? = nil) throws {
        guard let daemon else { throw NetworkNamespaceFixture.FixtureError("\(namespace): start the daemon first") }
        var body: [String: Any] = ["name": port, "type": "af-packet", "interface": interface]
        if let vlan { body["vlan"] = vlan }
        let reply = try daemon.api.json("POST", "/v1/ports", body)
        guard reply.status == 201 else {
            throw NetworkNamespaceFixture.FixtureError("\(namespace): POST /v1/ports \(body) -> \(reply)")
        }
    }

    /// Stops the daemon (SIGTERM), then removes the guests and the node's namespace with
    /// every interface in it (the underlay's other end and the VXLAN devices go with it).
    public func destroy() {
        guard !destroyed else { return }
        destroyed = true
        daemon?.stop()
        for guest in guests { guest.destroy() }
        _ = try? NetworkNamespaceFixture.run(["/usr/sbin/ip", "netns", "del", namespace], check: false)
    }
}
