import Foundation
import Glibc

extension IntegrationEnvironment {
    /// nil when tests that run the daemon but no DPDK (no testpmd, no hugepages) can run here:
    /// root (the daemon's socket and run directories, like a node's) and a built daemon.
    /// Otherwise the reason, printed.
    public static func printedDaemonSkipReason(_ test: String = #function) -> String? {
        var reason: String?
        if geteuid() != 0 {
            reason = "the daemon tests run as root, like the daemon on a node; euid is \(geteuid()). Run scripts/test.sh as root."
        } else if !FileManager.default.isExecutableFile(atPath: SwitchDaemonProcess.executablePath) {
            reason = "\(SwitchDaemonProcess.executablePath) is not built (swift build)"
        }
        if let reason { print("SKIP \(test): \(reason)") }
        return reason
    }
}
