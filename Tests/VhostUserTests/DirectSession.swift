import TestSupport
import VhostSystem
import VhostUser
import Virtio
import XCTest

/// A device and one session driven directly on the test thread over a socketpair: the
/// fake front-end's `pump` lets the connection handle each request before the reply is read.
final class DirectSession {
    /// Everything offered but LOG_ALL, and RING_PACKED: the fake front-end lays out split rings.
    static let features: UInt64 = VhostUserDevice.defaultOfferedFeatures & ~VhostUserDevice.logAllFeature & ~VhostUserDevice.ringPackedFeature
    let delegate = RecordingDeviceDelegate()
    let device: VhostUserDevice
    let connection: VhostUserConnection
    let frontend: FakeFrontend

    init(maxQueuePairs: Int = 2, offered: UInt64 = VhostUserDevice.defaultOfferedFeatures) throws {
        device = try VhostUserDevice(
            configuration: VhostUserDeviceConfiguration(name: "test0", socketPath: "/nonexistent/test0.sock",
                                                        maxQueuePairs: maxQueuePairs, offeredFeatures: offered),
            delegate: delegate)
        let (frontend, backend) = try FakeFrontend.pair()
        connection = VhostUserConnection(device: device, socket: backend)
        self.frontend = frontend
        frontend.pump = { [connection] in _ = connection.handleReadable() }
    }

    /// Lets the connection handle whatever was sent.
    func process() { connection.handleReadable() }

    /// Features (with PROTOCOL_FEATURES and every protocol feature, REPLY_ACK included),
    /// owner and, when given, the memory table.
    func negotiate(memory: FakeFrontendMemory?, features: UInt64 = DirectSession.features) throws {
        XCTAssertTrue(try frontend.negotiate(features: features, memory: memory))
        process()
    }

    /// A ready device: memory plus rings 0 and 1 started and enabled.
    func makeReady(memory: FakeFrontendMemory, kicks: [EventFD], bases: [UInt32] = [0, 0], features: UInt64 = DirectSession.features) throws {
        try negotiate(memory: memory, features: features)
        for ring in 0..<2 {
            XCTAssertTrue(try frontend.setUpRing(ring, base: bases[ring], memory: memory, kick: kicks[ring].descriptor, call: nil))
            XCTAssertTrue(try frontend.enableRing(ring))
        }
    }

    var info: VhostUserDeviceInfo { device.info() }
}

extension XCTestCase {
    /// Asserts that `body` leaves the process's fd count unchanged.
    func assertNoFdLeak(_ message: String = "", file: StaticString = #filePath, line: UInt = #line, _ body: () throws -> Void) rethrows {
        let before = FileDescriptor.openCount()
        try body()
        XCTAssertEqual(FileDescriptor.openCount(), before, "fd count changed \(message)", file: file, line: line)
    }
}
