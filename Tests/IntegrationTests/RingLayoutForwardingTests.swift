// vhost-switchd against dpdk-testpmd virtio-user front-ends with each ring layout and
// option the front-end can ask for: packed rings (packed_vq=1), IN_ORDER (in_order=1) and
// mergeable receive buffers on and off (mrg_rxbuf=0/1), and a split front-end talking to a
// packed one through the switch. Traffic flows both ways with exact counts.
import Foundation
import TestSupport
import XCTest

final class RingLayoutForwardingTests: XCTestCase {
    private func skipUnlessIntegrationEnvironment(_ test: String = #function) throws {
        if let reason = IntegrationEnvironment.printedSkipReason(test) { throw XCTSkip(reason) }
        guard FileManager.default.isExecutableFile(atPath: SwitchDaemonProcess.executablePath) else {
            print("[skip] \(test): \(SwitchDaemonProcess.executablePath) is not built")
            throw XCTSkip("vhost-switchd is not built")
        }
    }

    private let config = """
        {"ports": [
          {"name": "a", "type": "vhost-user", "socket": {"path": "a.sock", "mode": "server"}, "queues": 1},
          {"name": "b", "type": "vhost-user", "socket": {"path": "b.sock", "mode": "server"}, "queues": 1}
        ]}
        """

    /// The vrings of a port as GET /v1/ports/NAME/vrings shows them.
    private func vrings(_ daemon: SwitchDaemonProcess, port: String) throws -> [[String: Any]] {
        let json = try SwitchEventHistory.getJSON(apiSocket: daemon.apiSocketPath, path: "/v1/ports/\(port)/vrings")
        return try XCTUnwrap((json as? [String: Any])?["vrings"] as? [[String: Any]])
    }

    private func negotiated(_ daemon: SwitchDaemonProcess, port: String) throws -> [String] {
        let json = try SwitchEventHistory.getJSON(apiSocket: daemon.apiSocketPath, path: "/v1/ports/\(port)/features")
        let negotiated = (json as? [String: Any])?["negotiated"] as? [String: Any]
        return negotiated?["names"] as? [String] ?? []
    }


    /// One daemon, one testpmd with two virtio-user ports using `options` (per port), then
    /// exact exchanges at 64 and 1518 bytes, enough of them to wrap the 256-entry rings.
    private func exchange(options: [String], expectPacked: [Bool], expectInOrder: Bool,
                          file: StaticString = #filePath, line: UInt = #line) throws {
        let daemon = try SwitchDaemonProcess(config: config, extraArguments: ["--pmd-cpus", "1"])
        defer { daemon.stop() }
        let sockets = [daemon.socketPath("a.sock"), daemon.socketPath("b.sock")]
        for socket in sockets { try daemon.waitForFile(socket) }
        let frontEnd = try Testpmd.frontEnd(sockets: sockets, cpu: 0, burst: 32, vdevOptions: options)
        defer { frontEnd.quit() }
        try frontEnd.waitForLinkUp(ports: [0, 1])
        try daemon.waitForLog("device ready")

        for (index, port) in ["a", "b"].enumerated() {
            let features = try negotiated(daemon, port: port)
            XCTAssertEqual(features.contains("ring_packed"), expectPacked[index], "port \(port): \(features)", file: file, line: line)
            if expectInOrder { XCTAssertTrue(features.contains("in_order"), "port \(port): \(features)", file: file, line: line) }
            let rings = try vrings(daemon, port: port)
            XCTAssertEqual(rings.compactMap { $0["layout"] as? String }, [String](repeating: expectPacked[index] ? "packed" : "split", count: rings.count),
                           "port \(port)", file: file, line: line)
        }
        do {
            // 8 x 128 frames each way: four laps of the 256-entry rings. (One exchange stays
            // within a ring: testpmd drops tx_first bursts that find its ring full.)
            for _ in 0..<8 { try assertExactExchange(frontEnd, bursts: 4, burst: 32, length: 64, file: file, line: line) }
            try assertExactExchange(frontEnd, bursts: 2, burst: 32, length: 1518, file: file, line: line)
        } catch {
            for port in ["a", "b"] {
                let json = try? SwitchEventHistory.getJSON(apiSocket: daemon.apiSocketPath, path: "/v1/ports/\(port)/vrings")
                print("[rings] port \(port): \(json.map { "\($0)" } ?? "n/a")")
            }
            throw error
        }
        for port in ["a", "b"] {
            for ring in try vrings(daemon, port: port) {
                let counters = ring["counters"] as? [String: Any] ?? [:]
                for key in ["drops_malformed_descriptor", "invalid_heads", "ring_errors"] {
                    XCTAssertEqual(counters[key] as? Int, 0, "port \(port) vring \(ring["index"] ?? "?") \(key)", file: file, line: line)
                }
            }
        }
        XCTAssertEqual(frontEnd.quit(), 0, file: file, line: line)
    }

    func testPackedRingWithMergeableBuffers() throws {
        try skipUnlessIntegrationEnvironment()
        try exchange(options: ["packed_vq=1,mrg_rxbuf=1"], expectPacked: [true, true], expectInOrder: false)
    }

    func testPackedRingWithoutMergeableBuffers() throws {
        try skipUnlessIntegrationEnvironment()
        try exchange(options: ["packed_vq=1,mrg_rxbuf=0"], expectPacked: [true, true], expectInOrder: false)
    }

    func testPackedRingInOrderWithoutMergeableBuffers() throws {
        try skipUnlessIntegrationEnvironment()
        try exchange(options: ["packed_vq=1,in_order=1,mrg_rxbuf=0"], expectPacked: [true, true], expectInOrder: true)
    }

    func testPackedRingInOrderWithMergeableBuffers() throws {
        try skipUnlessIntegrationEnvironment()
        try exchange(options: ["packed_vq=1,in_order=1,mrg_rxbuf=1"], expectPacked: [true, true], expectInOrder: true)
    }

    func testSplitRingInOrderWithoutMergeableBuffers() throws {
        try skipUnlessIntegrationEnvironment()
        try exchange(options: ["packed_vq=0,in_order=1,mrg_rxbuf=0"], expectPacked: [false, false], expectInOrder: true)
    }

    func testSplitRingInOrderWithMergeableBuffers() throws {
        try skipUnlessIntegrationEnvironment()
        try exchange(options: ["packed_vq=0,in_order=1,mrg_rxbuf=1"], expectPacked: [false, false], expectInOrder: true)
    }

    func testSplitFrontEndToPackedFrontEnd() throws {
        try skipUnlessIntegrationEnvironment()
        try exchange(options: ["packed_vq=0,mrg_rxbuf=1", "packed_vq=1,mrg_rxbuf=0"], expectPacked: [false, true], expectInOrder: false)
    }
}
