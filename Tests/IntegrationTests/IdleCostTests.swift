// An idle switch must not burn a core: with 16 connected front-ends and no traffic, the
// adaptive poll thread sleeps in epoll on the kick eventfds.
import Foundation
import TestSupport
import XCTest

final class IdleCostTests: XCTestCase {
    func testIdleDaemonWithSixteenFrontEndsUsesUnderTwoPercentOfACore() throws {
        if let reason = IntegrationEnvironment.printedSkipReason() { throw XCTSkip(reason) }
        let count = 16
        let ports = (0..<count).map { #"{"name": "p\#($0)", "type": "vhost-user", "socket": {"path": "p\#($0).sock"}}"# }
        let daemon = try SwitchDaemonProcess(config: #"{"ports": ["# + ports.joined(separator: ",") + "]}", extraArguments: ["--pmd-cpus", "1"])
        defer { daemon.stop() }
        let sockets = (0..<count).map { daemon.socketPath("p\($0).sock") }
        for socket in sockets { try daemon.waitForFile(socket) }
        let macs = (0..<count).map { String(format: "02:00:00:00:01:%02x", $0) }
        let frontEnd = try Testpmd.frontEnd(sockets: sockets, macs: macs, peerMACs: [], cpu: 0, burst: 32,
                                            extraAppArguments: ["--total-num-mbufs=32768"])
        defer { frontEnd.quit() }
        try frontEnd.waitForLinkUp(ports: Array(0..<count))
        // Every device ready, then give the poll thread its idle period to fall asleep.
        let deadline = Date().addingTimeInterval(20)
        while daemon.output.components(separatedBy: "[Dataplane] device ready").count - 1 < count && Date() < deadline {
            Thread.sleep(forTimeInterval: 0.1)
        }
        // DPDK re-sends its memory table as it grows, so a device can become ready more than once.
        XCTAssertGreaterThanOrEqual(daemon.output.components(separatedBy: "[Dataplane] device ready").count - 1, count, daemon.output)
        Thread.sleep(forTimeInterval: 1)

        let ticksPerSecond = Double(sysconf(Int32(_SC_CLK_TCK)))
        let before = try XCTUnwrap(daemon.cpuTicks())
        let start = Date()
        Thread.sleep(forTimeInterval: 10)
        let after = try XCTUnwrap(daemon.cpuTicks())
        let percent = Double(after - before) / ticksPerSecond / Date().timeIntervalSince(start) * 100
        print(String(format: "[idle cost] %d connected front-ends, adaptive polling: %.2f%% of a core over 10 s", count, percent))
        XCTAssertLessThan(percent, 2.0)
        XCTAssertEqual(frontEnd.quit(), 0)
    }
}
