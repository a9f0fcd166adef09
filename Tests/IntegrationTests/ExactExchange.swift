import Foundation
import TestSupport
import XCTest

/// The exact-count check of the testpmd forwarding tests (two front-end ports through the
/// switch), shared by `TestpmdSwitchForwardingTests` and `RingLayoutForwardingTests`.
extension XCTestCase {
    /// Sends `bursts` bursts of `burst` frames of `length` bytes from each front-end port
    /// and checks that each port received exactly what the other sent.
    func assertExactExchange(_ frontEnd: Testpmd, bursts: Int, burst: Int, length: Int,
                                     file: StaticString = #filePath, line: UInt = #line) throws {
        let packets = UInt64(bursts * burst)
        let bytes = packets * UInt64(length)
        try frontEnd.clearStats()
        try frontEnd.setPacketLength(length)
        try frontEnd.start(txFirst: bursts)
        let stats = try frontEnd.waitForPortStats(timeout: 10) { stats in
            stats.count == 2 && stats.allSatisfy { $0.rxPackets >= packets && $0.txPackets >= packets }
        }
        Thread.sleep(forTimeInterval: 0.2)  // nothing more may arrive: no duplicates
        _ = try frontEnd.stop()
        let final = try frontEnd.portStats()
        XCTAssertEqual(final, stats, "counters moved after the expected packets", file: file, line: line)
        for port in 0..<2 {
            XCTAssertEqual(final[port], TestpmdPortStats(port: port, rxPackets: packets, rxBytes: bytes, txPackets: packets, txBytes: bytes),
                           "front-end port \(port)", file: file, line: line)
        }
    }
}
