import TestSupport
import VhostSystem
import VhostUser
import Virtio
import XCTest

/// Real sockets through the control loop: server and client endpoints, reconnects, and
/// front-ends that stall or flood without blocking other ports.
final class VhostUserControlLoopTests: XCTestCase {
    private var loop: VhostUserControlLoop!
    private var directory = ""

    override func setUpWithError() throws {
        loop = try VhostUserControlLoop()
        directory = "/tmp/vhost-user-tests-\(MonotonicClock.nanoseconds())"
        try FileSystem.makeDirectoryTree(directory)
    }

    override func tearDown() {
        loop.shutdown()
        loop = nil
    }

    private func path(_ name: String) -> String { "\(directory)/\(name).sock" }

    private func addServer(_ name: String, delegate: RecordingDeviceDelegate = RecordingDeviceDelegate()) throws -> VhostUserDevice {
        try loop.addDevice(VhostUserDeviceConfiguration(name: name, socketPath: path(name), mode: .server, maxQueuePairs: 2), delegate: delegate)
    }

    /// Polls `condition` for up to `seconds`.
    private func eventually(_ seconds: Double = 3, _ condition: () -> Bool) -> Bool {
        let deadline = MonotonicClock.nanoseconds() + UInt64(seconds * 1e9)
        while MonotonicClock.nanoseconds() < deadline {
            if condition() { return true }
            SystemThread.sleep(milliseconds: 2)
        }
        return condition()
    }

    func testServerModeAcceptsAndSecondConnectionRefused() throws {
        let delegate = RecordingDeviceDelegate()
        let device = try addServer("srv0", delegate: delegate)
        XCTAssertEqual(loop.info(of: device).state, .listening)
        let first = try FakeFrontend.connect(path: path("srv0"))
        XCTAssertEqual(try first.request(.getFeatures)?.u64, VhostUserDevice.defaultOfferedFeatures)
        let second = try FakeFrontend.connect(path: path("srv0"))
        XCTAssertTrue(second.waitForClose(), "a second front-end is turned away")
        XCTAssertEqual(try first.request(.getQueueNum)?.u64, 2, "the first session is untouched")
        XCTAssertEqual(loop.info(of: device).state, .connected)
        XCTAssertEqual(delegate.count(.connected), 1)
    }

    func testServerModeReconnectAfterDisconnect() throws {
        let delegate = RecordingDeviceDelegate()
        let device = try addServer("srv1", delegate: delegate)
        for round in 1...3 {
            let frontend = try FakeFrontend.connect(path: path("srv1"))
            XCTAssertNotNil(try frontend.request(.getFeatures), "round \(round)")
            frontend.close()
            XCTAssertTrue(eventually { delegate.count(.destroyed) == round })
        }
        XCTAssertTrue(eventually { self.loop.info(of: device).state == .listening })
        XCTAssertEqual(loop.info(of: device).sessions, 3)
    }

    func testClientModeBackoffUntilSocketAppears() throws {
        let delegate = RecordingDeviceDelegate()
        let socketPath = path("cli0")
        let device = try loop.addDevice(VhostUserDeviceConfiguration(name: "cli0", socketPath: socketPath, mode: .client), delegate: delegate)
        XCTAssertEqual(loop.info(of: device).state, .connecting)
        SystemThread.sleep(milliseconds: 350)  // several failed attempts (100, 200 ms...)
        let listener = try UnixSocket.listen(path: socketPath)
        var accepted: FileDescriptor?
        XCTAssertTrue(eventually(5) {
            accepted = try? UnixSocket.accept(listener)
            return accepted != nil
        })
        let frontend = FakeFrontend(socket: accepted!)
        XCTAssertEqual(try frontend.request(.getFeatures)?.u64, VhostUserDevice.defaultOfferedFeatures)
        XCTAssertEqual(loop.info(of: device).state, .connected)

        // After a disconnect the switch connects again.
        frontend.close()
        XCTAssertTrue(eventually { delegate.count(.destroyed) == 1 })
        var again: FileDescriptor?
        XCTAssertTrue(eventually(5) {
            again = try? UnixSocket.accept(listener)
            return again != nil
        })
        XCTAssertNotNil(try FakeFrontend(socket: again!).request(.getFeatures))
        XCTAssertEqual(delegate.count(.connected), 2)
        FileSystem.remove(socketPath)
    }

    func testRemoveDeviceUnlinksSocketAndDestroys() throws {
        let delegate = RecordingDeviceDelegate()
        let device = try addServer("srv2", delegate: delegate)
        let frontend = try FakeFrontend.connect(path: path("srv2"))
        XCTAssertNotNil(try frontend.request(.getFeatures))
        XCTAssertEqual(FileSystem.kind(at: path("srv2")), .socket)
        loop.removeDevice(device)
        XCTAssertNil(FileSystem.kind(at: path("srv2")))
        XCTAssertEqual(delegate.events.last, .destroyed)
        XCTAssertTrue(frontend.waitForClose())
        XCTAssertEqual(loop.info(of: device).state, .stopped)
        XCTAssertTrue(loop.devices.isEmpty)
    }

    func testDuplicateNameRefused() throws {
        _ = try addServer("dup")
        XCTAssertThrowsError(try loop.addDevice(VhostUserDeviceConfiguration(name: "dup", socketPath: path("dup2")), delegate: RecordingDeviceDelegate()))
    }

    func testRemovedDevicesNameIsFreeAgain() throws {
        let device = try addServer("again")
        loop.removeDevice(device)
        let second = try addServer("again")
        XCTAssertEqual(loop.devices.map(\.name), ["again"])
        XCTAssertThrowsError(try loop.addDevice(VhostUserDeviceConfiguration(name: "again", socketPath: path("again2")),
                                                delegate: RecordingDeviceDelegate()), "the name is taken again")
        let frontend = try FakeFrontend.connect(path: path("again"))
        XCTAssertNotNil(try frontend.request(.getFeatures), "the second device listens on the reused socket path")
        loop.removeDevice(second)
        XCTAssertTrue(loop.devices.isEmpty)
    }

    func testHalfHeaderThenStallDoesNotBlockOtherSockets() throws {
        _ = try addServer("stall")
        _ = try addServer("live")
        let stalled = try FakeFrontend.connect(path: path("stall"))
        try stalled.sendRaw([1, 0, 0, 0, 1])
        let live = try FakeFrontend.connect(path: path("live"))
        let start = MonotonicClock.nanoseconds()
        XCTAssertEqual(try live.request(.getFeatures)?.u64, VhostUserDevice.defaultOfferedFeatures)
        XCTAssertLessThan(MonotonicClock.nanoseconds() - start, 1_000_000_000)
        // The stalled session completes when the rest arrives.
        try stalled.sendRaw([0, 0, 0, 0, 0, 0, 0])
        XCTAssertEqual(stalled.readReply()?.u64, VhostUserDevice.defaultOfferedFeatures)
    }

    func testHeaderWithoutPayloadStallDoesNotBlockOtherSockets() throws {
        let stallDevice = try addServer("stall2")
        _ = try addServer("live2")
        let stalled = try FakeFrontend.connect(path: path("stall2"))
        try stalled.sendRaw(FakeFrontend.header(VhostUserRequest.setFeatures.rawValue, size: 8))
        let live = try FakeFrontend.connect(path: path("live2"))
        XCTAssertEqual(try live.request(.getQueueNum)?.u64, 2)
        XCTAssertEqual(loop.info(of: stallDevice).state, .connected)
    }

    func testDisconnectMidMessageOverTheLoopKeepsOtherPortsServing() throws {
        let delegate = RecordingDeviceDelegate()
        let device = try addServer("mid", delegate: delegate)
        _ = try addServer("other")
        let other = try FakeFrontend.connect(path: path("other"))
        let broken = try FakeFrontend.connect(path: path("mid"))
        try broken.sendRaw(FakeFrontend.header(VhostUserRequest.setFeatures.rawValue, size: 8) + [1, 2])
        broken.close()
        XCTAssertTrue(eventually { delegate.count(.destroyed) == 1 })
        XCTAssertEqual(loop.info(of: device).sessionsClosedOnError, 1)
        XCTAssertEqual(loop.info(of: device).state, .listening)
        XCTAssertNotNil(try other.request(.getFeatures))
    }

    func testManyIdleConnectionsAreClosedAndDoNotLeak() throws {
        let device = try addServer("idle")
        _ = try addServer("busy")
        let owner = try FakeFrontend.connect(path: path("idle"))
        XCTAssertNotNil(try owner.request(.getFeatures))
        let before = FileDescriptor.openCount()
        var idle: [FakeFrontend] = []
        for _ in 0..<100 { idle.append(try FakeFrontend.connect(path: path("idle"))) }
        XCTAssertTrue(idle.allSatisfy { $0.waitForClose() })
        for connection in idle { connection.close() }
        idle = []
        let busy = try FakeFrontend.connect(path: path("busy"))
        XCTAssertNotNil(try busy.request(.getFeatures))
        busy.close()
        XCTAssertTrue(eventually { FileDescriptor.openCount() == before })
        XCTAssertEqual(loop.info(of: device).sessions, 1)
    }

    func testFullSessionOverTheLoop() throws {
        let delegate = RecordingDeviceDelegate()
        let device = try addServer("full", delegate: delegate)
        let frontend = try FakeFrontend.connect(path: path("full"))
        let memory = try FakeFrontendMemory()
        let kicks = [try EventFD(), try EventFD()]
        XCTAssertTrue(try frontend.negotiate(features: DirectSession.features, memory: memory))
        for ring in 0..<2 {
            XCTAssertTrue(try frontend.setUpRing(ring, memory: memory, kick: kicks[ring].descriptor, call: nil))
            XCTAssertTrue(try frontend.enableRing(ring))
        }
        XCTAssertTrue(eventually { delegate.count(.ready) == 1 })
        XCTAssertEqual(delegate.queues.map(\.vringIndex), [0, 1])
        let info = loop.info(of: device)
        XCTAssertEqual(info.state, .ready)
        XCTAssertEqual(info.vrings.count, 2)
        loop.removeDevice(device)
        XCTAssertEqual(Array(delegate.events.suffix(2)), [.queuesChanged([]), .destroyed])
    }

    func testPerformRunsOnTheLoopAndReturnsResults() throws {
        XCTAssertEqual(loop.perform { 41 + 1 }, 42)
        struct Failure: Error {}
        XCTAssertThrowsError(try loop.perform { () throws(Failure) -> Int in throw Failure() })
    }
}
