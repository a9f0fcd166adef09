import Glibc
import XCTest
@testable import VhostSystem

/// sd_notify without libsystemd, against a real AF_UNIX datagram socket standing in for systemd.
final class ServiceManagerSocketTests: XCTestCase {
    private var directory = ""

    override func setUpWithError() throws {
        var template = Array("/tmp/vhost-notify-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw SystemError("mkdtemp", errno: errno) }
        directory = String(cString: made)
    }

    override func tearDown() {
        unlink(directory + "/notify")
        rmdir(directory)
    }

    func testStatesArriveAsOneDatagramEachOnAPathSocket() throws {
        let listener = try ServiceManagerSocket.listen(path: directory + "/notify")
        let notifier = try ServiceManagerSocket(address: directory + "/notify")
        try notifier.send("READY=1")
        try notifier.send("MAINPID=42\nREADY=1")
        XCTAssertEqual(try Self.nextDatagram(listener).bytes, Array("READY=1".utf8))
        XCTAssertEqual(try Self.nextDatagram(listener).bytes, Array("MAINPID=42\nREADY=1".utf8))
    }

    /// "@name" is an abstract socket: no file, a NUL first byte, the name not NUL-terminated
    /// (a terminating NUL would make it another name, and systemd would never see the message).
    func testAbstractAddressReachesTheAbstractName() throws {
        let name = "@vhost-switch-notify-\(getpid())"
        let listener = try ServiceManagerSocket.listen(path: name)
        try ServiceManagerSocket(address: name).send("STOPPING=1")
        XCTAssertEqual(try Self.nextDatagram(listener).bytes, Array("STOPPING=1".utf8))
        XCTAssertThrowsError(try ServiceManagerSocket(address: name + "-other"), "another abstract name has no listener")
    }

    func testUnusableAddressesAreRefused() {
        for address in ["", "@", "relative/path", "/" + String(repeating: "x", count: 200), "/a\u{0}b"] {
            XCTAssertThrowsError(try ServiceManagerSocket(address: address), address.debugDescription)
        }
        XCTAssertThrowsError(try ServiceManagerSocket(address: directory + "/nobody-listens"))
    }

    /// BARRIER=1 carries a pipe's write end; the barrier holds until the manager closes it.
    func testBarrierReturnsOnceTheManagerClosedTheDescriptor() throws {
        let listener = try ServiceManagerSocket.listen(path: directory + "/notify")
        let notifier = try ServiceManagerSocket(address: directory + "/notify")
        let manager = Thread {
            guard let message = try? Self.nextDatagram(listener) else { return }
            // Handled: systemd closes the fd it received.
            if message.bytes == Array("BARRIER=1".utf8) { message.descriptors.forEach { $0.close() } }
        }
        manager.start()
        XCTAssertTrue(try notifier.barrier(timeoutMilliseconds: 5000))
    }

    func testBarrierTimesOutWhileTheManagerHoldsTheDescriptor() throws {
        let listener = try ServiceManagerSocket.listen(path: directory + "/notify")
        let notifier = try ServiceManagerSocket(address: directory + "/notify")
        let start = MonotonicClock.nanoseconds()
        // The datagram (and the fd in it) waits unread in the listener's queue.
        XCTAssertFalse(try notifier.barrier(timeoutMilliseconds: 100))
        XCTAssertGreaterThanOrEqual(MonotonicClock.nanoseconds() - start, 100_000_000)
        let held = try Self.nextDatagram(listener)
        XCTAssertEqual(held.descriptors.count, 1)
    }

    /// The next datagram within 2 s (the socket reads are non-blocking).
    static func nextDatagram(_ socket: FileDescriptor) throws -> UnixSocket.ReceivedBytes {
        let deadline = MonotonicClock.nanoseconds() + 2_000_000_000
        while true {
            let result = Result { () throws(SystemError) -> UnixSocket.ReceivedBytes in try UnixSocket.receive(socket, maxBytes: 4096) }
            guard case .failure(let error) = result, error.wouldBlock, MonotonicClock.nanoseconds() < deadline else { return try result.get() }
            usleep(1000)
        }
    }
}
