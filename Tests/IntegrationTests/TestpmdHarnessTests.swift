// Proves the testpmd harness against DPDK's own vhost-user back-end before it is used
// against vhost-switchd: a virtio-user front-end testpmd sends a known number of packets,
// the net_vhost back-end testpmd io-forwards them between its two ports, and both sides'
// counters must match exactly.
import TestSupport
import XCTest

final class TestpmdHarnessTests: XCTestCase {
    private func skipUnlessIntegrationEnvironment(_ test: String = #function) throws {
        if let reason = IntegrationEnvironment.printedSkipReason(test) {
            throw XCTSkip(reason)
        }
    }

    /// Server mode: the back-end owns the sockets, the front-end connects.
    func testDPDKBackEndForwardsExactCountsToVirtioUserFrontEnd() throws {
        try skipUnlessIntegrationEnvironment()
        let directory = try TemporarySocketDirectory()
        let sockets = [directory.socket("vh0.sock"), directory.socket("vh1.sock")]

        let backEnd = try Testpmd.backEnd(sockets: sockets, cpu: 1)
        defer { backEnd.quit() }
        try backEnd.start()

        let frontEnd = try Testpmd.frontEnd(sockets: sockets, cpu: 0, burst: 16)
        defer { frontEnd.quit() }
        try frontEnd.waitForLinkUp(ports: [0, 1])
        try backEnd.waitForLinkUp(ports: [0, 1])

        try assertExactForwarding(frontEnd: frontEnd, backEnd: backEnd, bursts: 4, burst: 16, packetLength: 64)
        // A second round with another frame size: counters accumulate exactly.
        try frontEnd.clearStats()
        try backEnd.clearStats()
        try assertExactForwarding(frontEnd: frontEnd, backEnd: backEnd, bursts: 2, burst: 16, packetLength: 300)

        XCTAssertEqual(frontEnd.quit(), 0)
        XCTAssertEqual(backEnd.quit(), 0)
    }

    /// Client mode: the front-end owns the sockets (virtio-user `server=1`) and the back-end
    /// connects (net_vhost `client=1`), as the switch does for a pod in server mode.
    func testDPDKBackEndInClientModeConnectsToServerModeFrontEnd() throws {
        try skipUnlessIntegrationEnvironment()
        let directory = try TemporarySocketDirectory()
        let sockets = [directory.socket("vu0.sock"), directory.socket("vu1.sock")]

        // Blocks in device probe until a back-end connects, so it returns before the prompt.
        let frontEnd = try Testpmd.frontEnd(sockets: sockets, serverMode: true, cpu: 0, burst: 8)
        defer { frontEnd.quit() }
        let backEnd = try Testpmd.backEnd(sockets: sockets, clientMode: true, cpu: 1)
        defer { backEnd.quit() }
        try frontEnd.waitForPrompt(timeout: 30)
        try backEnd.start()
        try frontEnd.waitForLinkUp(ports: [0, 1])
        try backEnd.waitForLinkUp(ports: [0, 1])

        try assertExactForwarding(frontEnd: frontEnd, backEnd: backEnd, bursts: 3, burst: 8, packetLength: 64)
    }

    /// The other memory modes: classic hugepage files (which `quit()` must delete) on the
    /// back-end, and `--no-huge` (shareable memfd, no hugepages at all) on the front-end.
    func testHugepageFilesAreRemovedAndNoHugeFrontEndWorks() throws {
        try skipUnlessIntegrationEnvironment()
        let directory = try TemporarySocketDirectory()
        let sockets = [directory.socket("vh0.sock"), directory.socket("vh1.sock")]

        let backEnd = try Testpmd.backEnd(sockets: sockets, cpu: 1, memory: .hugepageFiles)
        defer { backEnd.quit() }
        let prefix = backEnd.configuration.filePrefix
        let hugepageFiles = { () -> [String] in
            ((try? FileManager.default.contentsOfDirectory(atPath: "/dev/hugepages")) ?? [])
                .filter { $0.hasPrefix(prefix + "map_") }
        }
        XCTAssertFalse(hugepageFiles().isEmpty, "a testpmd without --in-memory keeps /dev/hugepages/\(prefix)map_* files")
        try backEnd.start()

        let frontEnd = try Testpmd.frontEnd(sockets: sockets, cpu: 0, burst: 32, memory: .noHuge(megabytes: 256))
        defer { frontEnd.quit() }
        try frontEnd.waitForLinkUp(ports: [0, 1])
        try backEnd.waitForLinkUp(ports: [0, 1])
        try assertExactForwarding(frontEnd: frontEnd, backEnd: backEnd, bursts: 1, burst: 32, packetLength: 64)

        XCTAssertEqual(frontEnd.quit(), 0)
        XCTAssertEqual(backEnd.quit(), 0)
        XCTAssertEqual(hugepageFiles(), [], "quit() removes the hugepage files testpmd leaves behind")
    }

    /// Parsers on canned testpmd 22.11 output, so a format change fails loudly even where the
    /// integration tests skip.
    func testParsesPortStatsAndStopSummary() {
        let stats = """
          ######################## NIC statistics for port 0  ########################
          RX-packets: 10         RX-missed: 0          RX-bytes:  640
          RX-errors: 0
          RX-nombuf:  0
          TX-packets: 12         TX-errors: 0          TX-bytes:  768
          Throughput (since last show)
          Rx-pps:            0          Rx-bps:            0
          Tx-pps:            0          Tx-bps:            0
          ############################################################################
          ######################## NIC statistics for port 1  ########################
          RX-packets: 12         RX-missed: 1          RX-bytes:  768
          RX-errors: 2
          RX-nombuf:  3
          TX-packets: 10         TX-errors: 4          TX-bytes:  640
          ############################################################################
        testpmd>
        """
        XCTAssertEqual(TestpmdOutputParser.portStats(stats), [
            TestpmdPortStats(port: 0, rxPackets: 10, rxBytes: 640, txPackets: 12, txBytes: 768),
            TestpmdPortStats(port: 1, rxPackets: 12, rxBytes: 768, rxMissed: 1, rxErrors: 2, rxNoMbuf: 3,
                      txPackets: 10, txBytes: 640, txErrors: 4),
        ])

        let stop = """
        Telling cores to stop...
        Waiting for lcores to finish...

          ---------------------- Forward statistics for port 0  ----------------------
          RX-packets: 30             RX-dropped: 0             RX-total: 30
          TX-packets: 31             TX-dropped: 2             TX-total: 33
          ----------------------------------------------------------------------------

          ---------------------- Forward statistics for port 1  ----------------------
          RX-packets: 33             RX-dropped: 0             RX-total: 33
          TX-packets: 30             TX-dropped: 0             TX-total: 30
          ----------------------------------------------------------------------------

          +++++++++++++++ Accumulated forward statistics for all ports+++++++++++++++
          RX-packets: 63             RX-dropped: 0             RX-total: 63
          TX-packets: 61             TX-dropped: 2             TX-total: 63
          ++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++

        Done.
        """
        XCTAssertEqual(TestpmdOutputParser.forwardStats(stop), [
            TestpmdForwardStats(port: 0, rxPackets: 30, rxDropped: 0, txPackets: 31, txDropped: 2),
            TestpmdForwardStats(port: 1, rxPackets: 33, rxDropped: 0, txPackets: 30, txDropped: 0),
        ])

        let summary = """
        Number of available ports: 2
        Port MAC Address       Name         Driver         Status   Link
        0    56:48:4F:53:54:00 net_vhost0   net_vhost      down     10 Gbps
        1    02:00:00:00:00:02 net_virtio_user1 net_virtio_user up       Unknown
        """
        XCTAssertEqual(TestpmdOutputParser.linkStatus(summary), [0: false, 1: true])
    }

    // MARK: - Helpers

    /// The front-end (rxonly) sends `bursts` x `burst` frames of `packetLength` bytes on each
    /// of its two ports (tx_first); the back-end forwards port 0 <-> port 1, so each front-end
    /// port must receive exactly what the other one sent, and the back-end must count the same.
    private func assertExactForwarding(frontEnd: Testpmd, backEnd: Testpmd, bursts: Int, burst: Int,
                                       packetLength: Int, file: StaticString = #filePath, line: UInt = #line) throws {
        let packets = UInt64(bursts * burst)
        let bytes = packets * UInt64(packetLength)
        try frontEnd.setPacketLength(packetLength)

        let started = Date()
        try frontEnd.start(txFirst: bursts)
        let frontStats = try frontEnd.waitForPortStats(timeout: 10) { stats in
            stats.count == 2 && stats.allSatisfy { $0.rxPackets >= packets && $0.txPackets >= packets }
        }
        print("[harness test] \(packets) packets per port forwarded in \(String(format: "%.3f", Date().timeIntervalSince(started))) s")
        // Nothing more may arrive: rxonly never transmits after the first bursts.
        Thread.sleep(forTimeInterval: 0.2)
        let forward = try frontEnd.stop()
        let backStats = try backEnd.portStats()
        let frontFinal = try frontEnd.portStats()
        XCTAssertEqual(frontFinal, frontStats, "front-end counters moved after the expected packets", file: file, line: line)

        for port in 0..<2 {
            XCTAssertEqual(frontFinal[port], TestpmdPortStats(port: port, rxPackets: packets, rxBytes: bytes,
                                                       txPackets: packets, txBytes: bytes),
                           "front-end port \(port)", file: file, line: line)
            XCTAssertEqual(backStats[port], TestpmdPortStats(port: port, rxPackets: packets, rxBytes: bytes,
                                                      txPackets: packets, txBytes: bytes),
                           "back-end port \(port)", file: file, line: line)
        }
        XCTAssertEqual(forward.map(\.rxPackets), [packets, packets], file: file, line: line)
        XCTAssertEqual(forward.map(\.txPackets), [packets, packets], file: file, line: line)
        XCTAssertEqual(forward.map(\.txDropped), [0, 0], file: file, line: line)
    }
}

final class TestpmdHarnessFailureTests: XCTestCase {
    /// A front-end pointed at a socket nobody listens on must fail fast with the reason, not
    /// run on with no ports or hang the suite.
    func testFrontEndWithoutBackEndFailsWithReason() throws {
        if let reason = IntegrationEnvironment.printedSkipReason() { throw XCTSkip(reason) }
        let directory = try TemporarySocketDirectory()
        let started = Date()
        XCTAssertThrowsError(try Testpmd.frontEnd(sockets: [directory.socket("nobody.sock")], cpu: 0)) { error in
            print("[harness test] expected failure: \(error)")
        }
        XCTAssertLessThan(Date().timeIntervalSince(started), 15)
    }

    /// A server-mode front-end whose back-end never comes blocks in start-up: waiting times
    /// out with the reason, and quit() still gets rid of the process.
    func testServerModeFrontEndWithoutBackEndTimesOutAndIsKilled() throws {
        if let reason = IntegrationEnvironment.printedSkipReason() { throw XCTSkip(reason) }
        let directory = try TemporarySocketDirectory()
        let frontEnd = try Testpmd.frontEnd(sockets: [directory.socket("lonely.sock")], serverMode: true, cpu: 0)
        XCTAssertThrowsError(try frontEnd.waitForPrompt(timeout: 2)) { error in
            print("[harness test] expected failure: \(String(describing: error).prefix(300))")
        }
        let started = Date()
        frontEnd.quit(timeout: 1)
        XCTAssertFalse(frontEnd.isRunning)
        XCTAssertLessThan(Date().timeIntervalSince(started), 12)
    }
}
