// /metrics for an af-packet port: before the counter tables it showed the port's (absent)
// rings, so packets_total stayed 0 however much crossed the port. The namespace pings the
// DPDK front-end through the switch (KernelPeerRig), and the port's series move with it.
import Foundation
import TestSupport
import XCTest

final class KernelPortMetricsTests: XCTestCase {
    func testAfPacketPortMetricsMoveWithTraffic() throws {
        if let reason = KernelPeerRig.skipReason() { throw XCTSkip(reason) }
        let rig = try KernelPeerRig(tag: "met", subnet: 17)
        defer { rig.tearDown() }
        let api = SwitchAPIClient(rig.daemon)
        let before = try Self.metrics(api)
        XCTAssertNotNil(before.samples[#"vhost_switch_port_packets_total{port="kernel",direction="rx"}"#], before.text)

        let pings = 10
        let ping = try rig.ping(count: pings)
        XCTAssertEqual(ping.status, 0, "ping through the switch failed:\n\(ping.output)\n\(rig.daemon.output)")

        // The API's counters read, then /metrics, then the API again: /metrics shows the same
        // counters as the API's `kernel` object, so each lies between the two reads.
        let statsBefore = try Self.kernelStats(api)
        let after = try Self.metrics(api)
        let statsAfter = try Self.kernelStats(api)
        func delta(_ series: String) -> UInt64 {
            (after.samples[series] ?? 0) &- (before.samples[series] ?? 0)
        }
        let echo = UInt64(pings)  // each way: an echo request in, a reply out (plus ARP and the odd ND frame)
        let frame: UInt64 = 98  // Ethernet + IPv4 + ICMP echo with ping's 56 bytes of data
        for (series, least) in [
            (#"vhost_switch_port_packets_total{port="kernel",direction="rx"}"#, echo),
            (#"vhost_switch_port_packets_total{port="kernel",direction="tx"}"#, echo),
            (#"vhost_switch_port_bytes_total{port="kernel",direction="rx"}"#, echo * frame),
            (#"vhost_switch_port_bytes_total{port="kernel",direction="tx"}"#, echo * frame),
            (#"vhost_switch_port_switched_packets_total{port="kernel",direction="rx"}"#, echo),
            (#"vhost_switch_port_switched_packets_total{port="kernel",direction="tx"}"#, echo),
            (#"vhost_switch_port_frames_by_size_total{port="kernel",direction="rx",size="65-127"}"#, echo),
            // The other end of the same traffic, on the vhost-user port's rings.
            (#"vhost_switch_port_packets_total{port="vm",direction="rx"}"#, echo),
            (#"vhost_switch_port_packets_total{port="vm",direction="tx"}"#, echo),
        ] {
            XCTAssertGreaterThanOrEqual(delta(series), least, "\(series) moved by \(delta(series)):\n\(after.text)")
        }
        XCTAssertEqual(after.samples[#"vhost_switch_port_up{port="kernel"}"#], 1)
        // Per vring: the vm port's one queue pair (vring 1: the guest's transmit ring, rx).
        XCTAssertGreaterThanOrEqual(delta(#"vhost_switch_vring_packets_total{port="vm",vring="1",direction="rx"}"#), echo, after.text)
        XCTAssertGreaterThanOrEqual(delta(#"vhost_switch_vring_packets_total{port="vm",vring="0",direction="tx"}"#), echo, after.text)
        XCTAssertEqual(after.samples[#"vhost_switch_pmd_rxq{thread="0",port="vm",vring="1"}"#], 1, after.text)
        // rx-queue usage: the poll thread's cycles on vm's transmit ring moved with its frames,
        // and are a part of the thread's own.
        let ringCycles = delta(#"vhost_switch_vring_busy_cycles_total{port="vm",vring="1",direction="rx"}"#)
        XCTAssertGreaterThan(ringCycles, 0, after.text)
        XCTAssertLessThanOrEqual(ringCycles, delta(#"vhost_switch_pmd_busy_cycles_total{thread="0"}"#)
                                 + delta(#"vhost_switch_pmd_idle_cycles_total{thread="0"}"#))
        // The process metrics every dashboard expects.
        XCTAssertGreaterThan(after.samples["process_open_fds"] ?? 0, 5, after.text)
        XCTAssertGreaterThan(after.samples["process_resident_memory_bytes"] ?? 0, 1 << 20, after.text)
        XCTAssertGreaterThan(after.samples["process_max_fds"] ?? 0, after.samples["process_open_fds"] ?? .max)
        XCTAssertEqual(delta(#"vhost_switch_port_drops_total{port="kernel",direction="tx",reason="ring_full"}"#), 0)
        for (series, key) in [
            (#"vhost_switch_port_packets_total{port="kernel",direction="rx"}"#, "rx_packets"),
            (#"vhost_switch_port_packets_total{port="kernel",direction="tx"}"#, "tx_packets"),
            (#"vhost_switch_port_bytes_total{port="kernel",direction="rx"}"#, "rx_bytes"),
            (#"vhost_switch_port_bytes_total{port="kernel",direction="tx"}"#, "tx_bytes"),
        ] {
            let value = after.samples[series] ?? 0
            XCTAssertTrue((statsBefore[key] ?? .max)...(statsAfter[key] ?? 0) ~= value,
                          "\(series) = \(value), the API's kernel.\(key) went from \(statsBefore[key] ?? 0) to \(statsAfter[key] ?? 0)")
        }
        print("[kernel port metrics] rx \(delta(#"vhost_switch_port_packets_total{port="kernel",direction="rx"}"#)) frames, "
              + "tx \(delta(#"vhost_switch_port_packets_total{port="kernel",direction="tx"}"#)) frames for \(pings) pings")

        if let promtool = ["/usr/bin/promtool", "/usr/local/bin/promtool"].first(where: FileManager.default.isExecutableFile(atPath:)) {
            let check = try Self.run(promtool, ["check", "metrics"], input: after.text)
            XCTAssertEqual(check.status, 0, "promtool check metrics: \(check.output)")
        }
    }

    /// GET /metrics, every sample by its series (name and labels as printed).
    static func metrics(_ api: SwitchAPIClient) throws -> (text: String, samples: [String: UInt64]) {
        let reply = try api.expect("GET", "/metrics", status: [200])
        var samples: [String: UInt64] = [:]
        for line in reply.body.split(separator: "\n") where !line.hasPrefix("#") {
            guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else { continue }
            samples[String(line[..<space])] = UInt64(value)
        }
        return (reply.body, samples)
    }

    /// The `kernel` object of GET /v1/ports/kernel/stats.
    static func kernelStats(_ api: SwitchAPIClient) throws -> [String: UInt64] {
        let reply = try api.expect("GET", "/v1/ports/kernel/stats", status: [200])
        let kernel = reply.object["kernel"] as? [String: Any] ?? [:]
        return kernel.compactMapValues { ($0 as? NSNumber)?.uint64Value }
    }

    static func run(_ path: String, _ arguments: [String], input: String) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        let stdin = Pipe(), stdout = Pipe()
        process.standardInput = stdin
        process.standardOutput = stdout
        process.standardError = stdout
        try process.run()
        stdin.fileHandleForWriting.write(Data(input.utf8))
        try stdin.fileHandleForWriting.close()
        let output = String(decoding: stdout.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return (process.terminationStatus, output)
    }
}
