import TestSupport
import XCTest

extension SwitchDaemonProcess {
    /// A rig with nothing started yet; skips the test when vhost-switchd or curl is missing.
    static func forAPITests() throws -> SwitchDaemonProcess {
        if let reason = unavailableReason { throw XCTSkip(reason) }
        return try SwitchDaemonProcess()
    }

    /// Starts the daemon as these tests run it (one poll thread, info logs) and waits until
    /// its API answers.
    func startForAPITests(listenTCP: Bool = false, token: String? = nil) throws {
        try start(extraArguments: ["--pmd-threads", "1", "--log-level", "info"], listenTCP: listenTCP, token: token)
        try waitUntilHealthy()
    }
}
