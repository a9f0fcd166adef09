// Issue 16, "Fast reconnects": QEMU's reconnect= and a restarted DPDK application close the
// vhost-user connection and connect again at once. The daemon must serve the new connection
// even while the old session's hang-up is still queued, and never reset it as a second
// front-end. Runs the real daemon with server-mode ports; no DPDK needed.
//
// FAST_RECONNECT_ROUNDS (default 1000) sets the count of the first test.
import Foundation
import TestSupport
import VhostSystem
import XCTest

final class FastReconnectTests: XCTestCase {
    private var daemon: SwitchDaemonProcess!

    override func setUpWithError() throws {
        if let reason = IntegrationEnvironment.printedDaemonSkipReason(name) { throw XCTSkip(reason) }
        daemon = try SwitchDaemonProcess(config: """
        {"ports": [
          {"name": "r", "type": "vhost-user", "socket": {"path": "r.sock"}},
          {"name": "busy", "type": "vhost-user", "socket": {"path": "busy.sock"}}
        ]}
        """, extraArguments: ["--log-level", "warning"])
        for name in ["r", "busy"] { try daemon.waitForFile(daemon.socketPath(name + ".sock")) }
    }

    override func tearDown() {
        daemon?.stop()
    }

    /// SET_OWNER (vhost-user.rst): no payload, no reply, not ring-changing; cheap to queue.
    private static let setOwnerRequest: UInt32 = 3

    /// What one connection got: its GET_FEATURES answered, or not (reset or silence).
    private func served(_ frontend: FakeFrontend) throws -> Bool {
        try frontend.send(.getFeatures)
        return frontend.readReply(timeoutMilliseconds: 2000)?.u64 != nil
    }

    /// Connect, GET_FEATURES, close, and connect again within a millisecond, 1,000 times in a
    /// row: every connection is served.
    func testReconnectWithinAMillisecondIsServedEveryTime() throws {
        let rounds = Int(ProcessInfo.processInfo.environment["FAST_RECONNECT_ROUNDS"] ?? "") ?? 1000
        let path = daemon.socketPath("r.sock")
        var refused: [Int] = []
        var slowestReconnectNanoseconds: UInt64 = 0
        var closedAt: UInt64?
        for round in 0..<rounds {
            let frontend = try FakeFrontend.connect(path: path)
            if let closedAt { slowestReconnectNanoseconds = max(slowestReconnectNanoseconds, MonotonicClock.nanoseconds() - closedAt) }
            if try !served(frontend) { refused.append(round) }
            frontend.close()
            closedAt = MonotonicClock.nanoseconds()
        }
        print("[fast-reconnect] \(rounds) reconnects, \(rounds - refused.count) served, slowest close-to-connect "
              + "\(slowestReconnectNanoseconds / 1000) us")
        XCTAssertLessThan(slowestReconnectNanoseconds, 1_000_000, "the test did not reconnect within a millisecond")
        XCTAssertTrue(refused.isEmpty, "\(refused.count) of \(rounds) reconnects were not served (first rounds \(refused.prefix(10))):\n"
                      + daemon.output.suffix(2000))
        XCTAssertTrue(daemon.isRunning)
    }

    /// The hard order: the old session sent many more requests than the daemon reads in one
    /// batch (1,000; it reads 64), hung up, and the new connection arrived while another
    /// port's front-end kept the control thread busy. The accept then comes before the old
    /// session's hang-up was read; the reconnect must still be served (the daemon before
    /// issue 16's fix turned away about half of them here, and with 1,000 unread requests
    /// before the hang-up was looked for with poll(2) instead of by reading another batch).
    /// Each round starts at once after the last: its first connection is a reconnect too.
    func testReconnectBehindUnreadRequestsIsServed() throws {
        let path = daemon.socketPath("r.sock")
        let setOwner = FakeFrontend.header(Self.setOwnerRequest, size: 0)
        let busyRequests = Array([[UInt8]](repeating: setOwner, count: 5000).joined())
        let unreadRequests = Array([[UInt8]](repeating: setOwner, count: 1000).joined())
        var refused: [String] = []
        let rounds = 200
        for round in 0..<rounds {
            let old = try FakeFrontend.connect(path: path)
            if try !served(old) { refused.append("\(round) (first)") }
            let busy = try FakeFrontend.connect(path: daemon.socketPath("busy.sock"))
            try busy.sendRaw(busyRequests)
            try old.sendRaw(unreadRequests)
            old.close()
            let new = try FakeFrontend.connect(path: path)
            if try !served(new) { refused.append("\(round)") }
            new.close()
            busy.close()
        }
        print("[fast-reconnect] behind unread requests: \(2 * rounds - refused.count) of \(2 * rounds) connections served")
        XCTAssertTrue(refused.isEmpty, "\(refused.count) of \(2 * rounds) connections were turned away (rounds \(refused.prefix(10))):\n"
                      + daemon.output.suffix(2000))
        XCTAssertTrue(daemon.isRunning)
    }
}
