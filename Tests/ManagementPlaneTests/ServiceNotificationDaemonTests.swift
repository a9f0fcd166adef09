import Foundation
import Synchronization
import TestSupport
import XCTest

/// The built daemon under a stand-in for systemd (Type=notify, WatchdogSec): READY=1 once the
/// API answers, WATCHDOG=1 every half $WATCHDOG_USEC, STOPPING=1 on SIGTERM.
final class ServiceNotificationDaemonTests: XCTestCase {
    func testReadyAfterTheAPIThenWatchdogPingsThenStoppingOnSIGTERM() throws {
        let daemon = try SwitchDaemonProcess.forAPITests()
        // When READY=1 arrives, the API must already answer: ask it right then.
        let healthAtReady = Mutex<Int?>(nil)
        let api = daemon.api
        let manager = try ServiceManagerStandIn { message in
            if message.assignments.contains("READY=1") {
                let status = (try? api.request("GET", "/v1/health"))?.status ?? -1
                healthAtReady.withLock { $0 = status }
            }
        }
        daemon.environment = ["NOTIFY_SOCKET": manager.address, "WATCHDOG_USEC": "400000"]
        try daemon.start(extraArguments: ["--pmd-threads", "1"])

        guard let ready = manager.waitFor("READY=1") else { return XCTFail("no READY=1:\n\(daemon.output)") }
        XCTAssertEqual(healthAtReady.withLock { $0 }, 200, "READY=1 came before the API answered")
        XCTAssertEqual(manager.messages(with: "READY=1").count, 1)
        XCTAssertTrue(manager.messages(with: "MAINPID=\(daemon.pid)").isEmpty, "MAINPID= is for a takeover only")

        // 200 ms apart while the threads make progress: over 2 s, about 10.
        Thread.sleep(forTimeInterval: 2)
        let pings = manager.messages(with: "WATCHDOG=1").filter { $0.nanoseconds >= ready.nanoseconds }
        XCTAssertGreaterThanOrEqual(pings.count, 5, "\(manager.messages.map(\.text))")
        XCTAssertLessThanOrEqual(pings.count, 12, "pinging faster than half the interval")
        let widestGap = zip(pings, pings.dropFirst()).map { $1.nanoseconds - $0.nanoseconds }.max() ?? 0
        XCTAssertLessThan(widestGap, 400_000_000, "a gap of a whole WATCHDOG_USEC would let systemd kill the daemon")

        XCTAssertEqual(daemon.stop(), 0, daemon.output)
        XCTAssertNotNil(manager.waitFor("STOPPING=1", timeout: 2), "\(manager.messages.map(\.text))")
        let stopping = manager.messages(with: "STOPPING=1")[0]
        XCTAssertTrue(manager.messages(with: "WATCHDOG=1").allSatisfy { $0.nanoseconds < stopping.nanoseconds }, "pings after STOPPING=1")
    }

    /// $WATCHDOG_PID names the process systemd expects pings from; another process's value
    /// (an environment inherited by a child) turns the watchdog off.
    func testNoWatchdogForAnotherProcess() throws {
        let daemon = try SwitchDaemonProcess.forAPITests()
        let manager = try ServiceManagerStandIn()
        daemon.environment = ["NOTIFY_SOCKET": manager.address, "WATCHDOG_USEC": "200000", "WATCHDOG_PID": "1"]
        try daemon.start(extraArguments: ["--pmd-threads", "1"])
        XCTAssertNotNil(manager.waitFor("READY=1"), daemon.output)
        Thread.sleep(forTimeInterval: 0.5)
        XCTAssertTrue(manager.messages(with: "WATCHDOG=1").isEmpty, "\(manager.messages.map(\.text))")
        XCTAssertEqual(daemon.stop(), 0)
    }
}
