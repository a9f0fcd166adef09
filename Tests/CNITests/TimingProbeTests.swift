import Foundation
import XCTest
final class TimingProbeTests: XCTestCase {
    func testTiming() throws {
        var t = Date()
        let live = try LiveSwitch()
        print("init \(Date().timeIntervalSince(t))"); t = Date()
        _ = try live.get("/v1/health")
        print("get \(Date().timeIntervalSince(t))"); t = Date()
        live.daemon.stop()
        print("stop \(Date().timeIntervalSince(t))")
    }
}
