// Multiqueue (issue 21): dpdk-testpmd with four queue pairs per virtio-user port sends
// several flows on every transmit queue (txonly, --txonly-multi-flow); the switch must take
// frames from each guest transmit ring and deliver into each guest receive ring (steered by
// flow hash), and every ring's counters in GET /v1/ports/{name}/vrings must show it.
import Foundation
import TestSupport
import XCTest

final class MultiqueueForwardingTests: XCTestCase {
    private static let queuePairs = 4

    private func skipUnlessIntegrationEnvironment(_ test: String = #function) throws {
        if let reason = IntegrationEnvironment.printedSkipReason(test) { throw XCTSkip(reason) }
        if let reason = SwitchDaemonProcess.unavailableReason {
            print("[skip] \(test): \(reason)")
            throw XCTSkip(reason)
        }
    }

    private var config: String {
        """
        {"ports": [
          {"name": "a", "type": "vhost-user", "socket": {"path": "a.sock", "mode": "server"}, "queues": \(Self.queuePairs)},
          {"name": "b", "type": "vhost-user", "socket": {"path": "b.sock", "mode": "server"}, "queues": \(Self.queuePairs)}
        ]}
        """
    }

    /// Packets per vring index of a port, from GET /v1/ports/{name}/vrings.
    private func ringPackets(_ daemon: SwitchDaemonProcess, port: String) throws -> [Int: Int] {
        let reply = try daemon.api.expect("GET", "/v1/ports/\(port)/vrings", status: [200])
        let rings = try XCTUnwrap(reply.object["vrings"] as? [[String: Any]], reply.body)
        var packets: [Int: Int] = [:]
        for ring in rings {
            guard let index = ring["index"] as? Int, let counters = ring["counters"] as? [String: Any] else { continue }
            packets[index] = counters["packets"] as? Int ?? 0
        }
        return packets
    }

    /// Both ports' rings after testpmd sent on every queue for a moment.
    private func forwardOnEveryQueue(pmdThreads: Int, file: StaticString = #filePath, line: UInt = #line) throws {
        let daemon = try SwitchDaemonProcess(config: config, extraArguments: ["--pmd-threads", "\(pmdThreads)"])
        defer { daemon.stop() }
        let sockets = [daemon.socketPath("a.sock"), daemon.socketPath("b.sock")]
        for socket in sockets { try daemon.waitForFile(socket) }
        let frontEnd = try Testpmd.frontEnd(sockets: sockets, cpu: 0, forwardMode: "txonly", burst: 16,
                                            queues: Self.queuePairs, extraAppArguments: ["--txonly-multi-flow"])
        defer { frontEnd.quit() }
        try frontEnd.waitForLinkUp(ports: [0, 1])
        try daemon.waitForLog("device ready")

        let device = try daemon.api.expect("GET", "/v1/ports/a/device", status: [200]).object
        XCTAssertEqual(device["max_queue_pairs"] as? Int, Self.queuePairs, file: file, line: line)

        try frontEnd.start()
        let deadline = Date().addingTimeInterval(10)
        var rings: [String: [Int: Int]] = [:]
        repeat {
            Thread.sleep(forTimeInterval: 0.2)
            rings = ["a": try ringPackets(daemon, port: "a"), "b": try ringPackets(daemon, port: "b")]
        } while Date() < deadline && !rings.values.allSatisfy({ ring in (0..<(2 * Self.queuePairs)).allSatisfy { (ring[$0] ?? 0) > 0 } })
        _ = try frontEnd.stop()

        for (port, packets) in rings.sorted(by: { $0.key < $1.key }) {
            XCTAssertEqual(packets.count, 2 * Self.queuePairs, "port \(port): \(packets)", file: file, line: line)
            for queue in 0..<Self.queuePairs {
                XCTAssertGreaterThan(packets[2 * queue + 1] ?? 0, 0, "port \(port): guest transmit ring of queue \(queue) idle: \(packets)",
                                     file: file, line: line)
                XCTAssertGreaterThan(packets[2 * queue] ?? 0, 0, "port \(port): guest receive ring of queue \(queue) idle: \(packets)",
                                     file: file, line: line)
            }
        }
        XCTAssertTrue(daemon.isRunning, daemon.output, file: file, line: line)
    }

    func testFourQueuePairsForwardOnEveryQueueWithOnePollThread() throws {
        try skipUnlessIntegrationEnvironment()
        try forwardOnEveryQueue(pmdThreads: 1)
    }

    func testFourQueuePairsForwardOnEveryQueueWithTwoPollThreads() throws {
        try skipUnlessIntegrationEnvironment()
        try forwardOnEveryQueue(pmdThreads: 2)
    }
}
