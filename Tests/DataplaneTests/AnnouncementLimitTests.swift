import Logging
import Synchronization
import TestSupport
import VhostSystem
import VhostUser
import XCTest
@testable import Dataplane

/// SEND_RARP is the front-end's to send as often as its budget allows; what it costs the
/// switch is bounded here (UNTRUSTED-INPUT.md): one RARP per MAC per interval, at most
/// `VhostUserLimits.maxPendingAnnouncements` MACs per interval, a bounded injection queue.
final class AnnouncementLimitTests: XCTestCase {
    private func mac(_ n: UInt8) -> [UInt8] { [0x02, 0, 0, 0, 0, n] }

    func testEachMacIsAnnouncedOncePerIntervalAndAtMostSixteenMacs() throws {
        // A ready port's bridge over a switch whose poll threads never run: every injected
        // frame stays queued. `sent` lists the MACs of its `rarp_sent` events.
        let events = Mutex<[SwitchEvent]>([])
        let bridge = VhostUserPortBridge(portID: 0, name: "rarp", fabric: try Switch(), logger: Logger(label: "test"),
                                         emit: { event in events.withLock { $0.append(event) } })
        let device = try VhostUserDevice(configuration: VhostUserDeviceConfiguration(name: "rarp", socketPath: "/nonexistent/rarp.sock"),
                                         delegate: RecordingDeviceDelegate())
        bridge.deviceReady(device)
        func sent() -> [String] {
            events.withLock { $0 }.filter { $0.kind == .rarpSent }.compactMap { event -> String? in
                if case .string(let text) = event.data["mac"] { text } else { nil }
            }
        }

        for _ in 0..<100 { bridge.deviceRequestsAnnounce(device, mac: mac(1)) }
        XCTAssertEqual(sent(), ["02:00:00:00:00:01"], "one RARP per MAC per interval")

        let limit = VhostUserLimits.maxPendingAnnouncements
        for n in 2...UInt8(limit + 1) { bridge.deviceRequestsAnnounce(device, mac: mac(n)) }
        XCTAssertEqual(sent().count, limit, "the MAC past \(limit) in one interval is not announced")
        XCTAssertFalse(sent().contains(MacAddress.format(0x0200_0000_0000 | UInt64(limit + 1))))

        SystemThread.sleep(milliseconds: Int(VhostUserLimits.announceIntervalMilliseconds) + 50)
        bridge.deviceRequestsAnnounce(device, mac: mac(1))
        bridge.deviceRequestsAnnounce(device, mac: mac(UInt8(limit + 1)))
        XCTAssertEqual(sent().count, limit + 2, "a new interval: both announced")
    }

    func testTheInjectionQueueHoldsAtMostItsCapacity() {
        let queue = InjectionQueue()
        let frame = InjectionQueue.Frame(portID: 0, bytes: AnnouncementFrame.rarp(mac: mac(1)))
        for i in 0..<InjectionQueue.capacity { XCTAssertTrue(queue.add(frame), "frame \(i)") }
        XCTAssertFalse(queue.add(frame), "the 65th frame is dropped")
        XCTAssertEqual(queue.take(max: 1).count, 1)
        XCTAssertTrue(queue.add(frame), "room for one again")
        XCTAssertEqual(queue.take(max: 1000).count, InjectionQueue.capacity)
        XCTAssertFalse(queue.hasFrames)
    }
}
