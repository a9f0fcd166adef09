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

    /// The step with segment policies (what the micro benchmark's VLAN variants time): access
    /// VLAN 10 into a trunk carrying it tagged.
    func testOneStepPushesTheTagForATrunk() throws {
        let macA: [UInt8] = [2, 0, 0, 0, 0, 0xA], macB: [UInt8] = [2, 0, 0, 0, 0, 0xB]
        let a = try SimulatedGuestPort(mac: macA), b = try SimulatedGuestPort(mac: macB)
        b.keepFrames = true
        let fdb = MacLearningTable()
        fdb.learn(MacAddress.load(macB), segment: 10, port: 1, now: 1)
        let step = try SwitchingStep(source: a.transmitQueue, destination: b.receiveQueue, fdb: fdb,
                                     sourcePolicy: .access(10), destinationPolicy: .trunk([10], native: nil))
        XCTAssertEqual(a.transmit(to: macB, count: 4), 4)
        XCTAssertEqual(step.run(now: 1), 4)
        XCTAssertEqual(b.collect(), 4)
        XCTAssertEqual(b.receivedFrames.map { Array($0[12..<16]) }, Array(repeating: [0x81, 0x00, 0x00, 10], count: 4))
        XCTAssertEqual(b.receivedFrames.map(\.count), Array(repeating: 68, count: 4))
        XCTAssertEqual(fdb.lookup(MacAddress.load(macA), segment: 10), 0)
    }
}
