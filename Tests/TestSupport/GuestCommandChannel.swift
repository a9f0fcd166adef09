import Foundation
import Glibc

/// Runs shell commands inside a `QemuGuest` started with `commandChannel: true`, while it runs:
/// the guest's /init reads "ID COMMAND" lines from its ttyS1 (a unix socket QEMU listens on)
/// and prints each output line as "VS-OUT ID ..." and then "VS-END ID status=N" on ttyS0 (the
/// serial log this reads). One command at a time, one line each; a test that needs a command
/// in the background ends it with `&`.
public final class GuestCommandChannel: @unchecked Sendable {
    public let guest: QemuGuest
    private let fd: Int32
    private var nextID = 1

    public struct Result: Sendable, CustomStringConvertible {
        public var status: Int
        public var output: String
        public var description: String { "status=\(status) output:\n\(output)" }
    }

    public init(_ guest: QemuGuest) throws {
        guard let path = guest.commandSocketPath else {
            throw QemuGuest.QemuError("guest \(guest.configuration.name) was started without commandChannel")
        }
        self.guest = guest
        fd = try QmpClient.connectUnix(path)
    }

    deinit { close(fd) }

    /// Runs `command` (one line of sh) in the guest; returns its exit status and output.
    public func run(_ command: String, timeout: TimeInterval = 60) throws -> Result {
        precondition(!command.contains("\n"), "one command line at a time")
        let id = nextID
        nextID += 1
        let line = Array("\(id) \(command)\n".utf8)
        var offset = 0
        while offset < line.count {
            let sent = line[offset...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if sent < 0 {
                if errno == EINTR { continue }
                throw QemuGuest.QemuError("command channel of \(guest.configuration.name): send errno \(errno)")
            }
            offset += sent
        }
        let end = "VS-END \(id) status="
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let lines = guest.testLines
            if let last = lines.first(where: { $0.hasPrefix(end) }) {
                let outputPrefix = "VS-OUT \(id) "
                let output = lines.filter { $0.hasPrefix(outputPrefix) }.map { String($0.dropFirst(outputPrefix.count)) }
                return Result(status: Int(last.dropFirst(end.count).prefix { $0.isNumber }) ?? -1,
                              output: output.joined(separator: "\n"))
            }
            if !guest.isRunning { throw QemuGuest.QemuError("guest \(guest.configuration.name) exited during \"\(command)\":\n\(guest.describe())") }
            Thread.sleep(forTimeInterval: 0.05)
        }
        throw QemuGuest.QemuError("guest \(guest.configuration.name) did not finish \"\(command)\" within \(timeout) s:\n\(guest.describe())")
    }

    /// A counter of the guest's eth0 (/sys/class/net/eth0/statistics/NAME, e.g. rx_packets).
    public func interfaceCounter(_ name: String) throws -> Int {
        let result = try run("cat /sys/class/net/eth0/statistics/\(name)")
        guard result.status == 0, let value = Int(result.output.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            throw QemuGuest.QemuError("eth0 counter \(name) of \(guest.configuration.name): \(result)")
        }
        return value
    }

    /// `ping -c count` from the guest (bound to `interface` when given); true when every echo
    /// came back.
    public func ping(_ address: String, count: Int = 5, interface: String? = nil) throws -> (allAnswered: Bool, output: String) {
        let bound = interface.map { "-I \($0) " } ?? ""
        let result = try run("ping -c \(count) -i 0.2 -W 2 \(bound)\(address)", timeout: Double(count) + 30)
        return (result.status == 0 && result.output.contains("\(count) packets received"), result.output)
    }

    /// Loads 8021q and its dependencies from the initramfs (in /modules.8021q's order; see
    /// `QemuGuest.Image.hasVLANModule`), then adds eth0.ID for each VLAN, with its address
    /// (a CIDR), up.
    public func addVLANInterfaces(_ interfaces: [(vlan: UInt16, address: String)]) throws {
        let load = try run("cd /lib/modules && for m in $(cat /modules.8021q); do grep -q \"^${m%.ko} \" /proc/modules || insmod $m || exit 1; done")
        guard load.status == 0 else { throw QemuGuest.QemuError("loading 8021q in \(guest.configuration.name): \(load)") }
        for interface in interfaces {
            let name = "eth0.\(interface.vlan)"
            let added = try run("ip link add link eth0 name \(name) type vlan id \(interface.vlan) && ip addr add \(interface.address) dev \(name) && ip link set \(name) up")
            guard added.status == 0 else { throw QemuGuest.QemuError("\(name) in \(guest.configuration.name): \(added)") }
        }
    }
}
