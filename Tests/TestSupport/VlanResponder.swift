import Foundation
import Glibc

/// An 802.1Q peer inside a network namespace, for trunk ports: scripts/vlan-responder.py
/// (Python 3, AF_PACKET) on the namespace's end of a veth answers ARP and ping for one IPv4
/// address per VLAN, only on that VLAN and with its tag, and logs every frame it receives with
/// its VLAN. The kernel here has no 802.1Q devices (CONFIG_VLAN_8021Q is off), so the tags are
/// made and read by the script (the kernel hands a received tag over in PACKET_AUXDATA).
public final class VlanResponder: @unchecked Sendable {
    public static let python = "/usr/bin/python3"
    public static var script: String { QemuGuest.packageRoot + "/scripts/vlan-responder.py" }

    public let network: NetworkNamespaceFixture
    public let mac: String
    private let process = Process()
    private let log = OutputCollector()

    /// nil when it can run here; otherwise why not (printed by the caller).
    public static func skipReason() -> String? {
        FileManager.default.isExecutableFile(atPath: python) ? nil : "python3 is not installed (scripts/setup.sh installs it)"
    }

    /// Starts answering for `addresses` (VLAN id to IPv4 address) with `mac` on the namespace's
    /// end of `network`; returns once its socket is bound.
    public init(network: NetworkNamespaceFixture, mac: String, addresses: [UInt16: String]) throws {
        self.network = network
        self.mac = mac
        process.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
        process.arguments = ["netns", "exec", network.namespace, Self.python, "-u", Self.script, "serve",
                             "--iface", network.namespaceInterface, "--mac", mac]
            + addresses.sorted { $0.key < $1.key }.flatMap { ["--address", "\($0.key)=\($0.value)"] }
        try log.run(process)
        let deadline = Date().addingTimeInterval(10)
        while !output.contains("READY") {
            guard process.isRunning, Date() < deadline else {
                stop()
                throw NetworkNamespaceFixture.FixtureError("vlan-responder did not start:\n\(output)")
            }
            Thread.sleep(forTimeInterval: 0.05)
        }
    }

    deinit { stop() }

    public var output: String { log.text }

    /// One logged frame the responder received.
    public struct ReceivedFrame: Equatable, Sendable {
        /// nil: untagged.
        public var vlan: UInt16?
        public var source: String
        public var destination: String
        public var etherType: UInt16
    }

    /// Every frame received so far, in order.
    public var received: [ReceivedFrame] {
        output.split(separator: "\n").compactMap { line -> ReceivedFrame? in
            guard line.hasPrefix("RX ") else { return nil }
            var fields: [String: String] = [:]
            for word in line.split(separator: " ").dropFirst() {
                let parts = word.split(separator: "=", maxSplits: 1)
                if parts.count == 2 { fields[String(parts[0])] = String(parts[1]) }
            }
            guard let source = fields["src"], let destination = fields["dst"],
                  let type = fields["type"].flatMap({ UInt16($0.dropFirst(2), radix: 16) }) else { return nil }
            return ReceivedFrame(vlan: fields["vlan"].flatMap { UInt16($0) }, source: source, destination: destination, etherType: type)
        }
    }

    /// Sends `count` broadcast ARP requests for `target` from the namespace's end, tagged with
    /// `vlan` (0: untagged), from this responder's MAC.
    public func sendBroadcasts(vlan: UInt16, count: Int, target: String, sender: String) throws {
        try network.inside([Self.python, Self.script, "send", "--iface", network.namespaceInterface, "--mac", mac,
                            "--vlan", String(vlan), "--count", String(count), "--target", target, "--sender", sender])
    }

    public func stop() {
        guard process.isRunning else { return }
        // `ip netns exec` execs python3, so the pid is the script's own.
        kill(process.processIdentifier, SIGTERM)
        process.waitUntilExit()
    }
}
