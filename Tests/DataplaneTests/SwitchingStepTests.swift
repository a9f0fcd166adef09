import XCTest
import Virtio
@_spi(Benchmarks) import Dataplane

/// `SwitchingStep` is what Benchmarks/Micro times; the benchmark package is not part of the
/// test run, so this checks here that the step forwards a burst to the learned port.
final class SwitchingStepTests: XCTestCase {
    func testOneStepForwardsABurstToTheLearnedPort() throws {
        let macA: [UInt8] = [2, 0, 0, 0, 0, 0xA], macB: [UInt8] = [2, 0, 0, 0, 0, 0xB]
        let a = try SimulatedGuestPort(mac: macA), b = try SimulatedGuestPort(mac: macB)
        let fdb = MacLearningTable()
        fdb.learn(MacAddress.load(macB), port: 1, now: 1)
        let step = try SwitchingStep(source: a.transmitQueue, destination: b.receiveQueue, fdb: fdb)

        XCTAssertEqual(a.transmit(to: macB, count: SwitchingStep.burstSize), SwitchingStep.burstSize)
        XCTAssertEqual(step.run(now: 1), SwitchingStep.burstSize)
        XCTAssertEqual(b.collect(), SwitchingStep.burstSize)
        XCTAssertEqual(step.transmittedPackets(port: 1), UInt64(SwitchingStep.burstSize))
        XCTAssertEqual(fdb.lookup(MacAddress.load(macA)), 0, "the source was learned on port 0")
        XCTAssertEqual(step.run(now: 1), 0, "nothing more to take")
    }
}
