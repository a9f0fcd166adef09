// Three real front-ends (one dpdk-testpmd per port, so each can send alone) on three
// vhost-user ports: unknown unicast floods, learned unicast goes to one port, a frame for
// a MAC on its own ingress port goes nowhere, and learned entries age out.
import Foundation
import TestSupport
import XCTest

final class LearningSwitchTests: XCTestCase {
    let macs = ["02:00:00:00:03:00", "02:00:00:00:03:01", "02:00:00:00:03:02"]
    let burst = 16

    func testFloodLearnNoHairpinAndAgeingWithThreeFrontEnds() throws {
        if let reason = IntegrationEnvironment.printedSkipReason() { throw XCTSkip(reason) }
        let ports = (0..<3).map { #"{"name": "p\#($0)", "type": "vhost-user", "socket": {"path": "p\#($0).sock"}}"# }
        let daemon = try SwitchDaemonProcess(config: #"{"ports": ["# + ports.joined(separator: ",") + "]}",
                                             extraArguments: ["--pmd-cpus", "1", "--mac-aging-seconds", "2"])
        defer { daemon.stop() }
        var frontEnds: [Testpmd] = []
        defer { for frontEnd in frontEnds { frontEnd.quit() } }
        for i in 0..<3 {
            let socket = daemon.socketPath("p\(i).sock")
            try daemon.waitForFile(socket)
            let frontEnd = try Testpmd.frontEnd(sockets: [socket], macs: [macs[i]], peerMACs: [macs[(i + 1) % 3]], cpu: 0, burst: burst)
            frontEnds.append(frontEnd)
            try frontEnd.waitForLinkUp(ports: [0])
            try frontEnd.start()
        }

        /// Port `from` sends one burst to `to`; returns what each front-end received.
        func send(from: Int, to mac: String) throws -> [UInt64] {
            for frontEnd in frontEnds { try frontEnd.clearStats() }
            let sender = frontEnds[from]
            try sender.stop()
            try sender.command("set eth-peer 0 \(mac)")
            try sender.start(txFirst: 1)
            _ = try sender.waitForPortStats(timeout: 5) { $0.first?.txPackets ?? 0 >= UInt64(burst) }
            Thread.sleep(forTimeInterval: 0.3)
            return try frontEnds.map { try $0.portStats()[0].rxPackets }
        }

        let n = UInt64(burst)
        XCTAssertEqual(try send(from: 0, to: macs[1]), [0, n, n], "unknown unicast floods to every other port")
        XCTAssertEqual(try send(from: 1, to: macs[0]), [n, 0, 0], "a learned MAC gets the frames alone")
        XCTAssertEqual(try send(from: 2, to: macs[0]), [n, 0, 0])
        XCTAssertEqual(try send(from: 0, to: macs[1]), [0, n, 0], "p1 was learned from its own frames")
        XCTAssertEqual(try send(from: 0, to: macs[0]), [0, 0, 0], "never back out of the ingress port")
        // After the ageing time every entry is gone: unicast floods again.
        Thread.sleep(forTimeInterval: 4)
        XCTAssertEqual(try send(from: 2, to: macs[1]), [n, n, 0], "aged-out MAC floods again")
        XCTAssertTrue(daemon.isRunning)
    }
}
