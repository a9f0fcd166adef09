import VhostSystem
import XCTest

/// The hand-over channel: frames and fd batches arrive whole and in order, more than 8 fds
/// go in several batches, and a peer that hangs up or stays silent is an error, never a hang.
final class HandoverChannelTests: XCTestCase {
    private func pair() throws -> (HandoverChannel, HandoverChannel) {
        let (left, right) = try UnixSocket.pair()
        return (HandoverChannel(socket: left), HandoverChannel(socket: right))
    }

    func testFramesAndTwentyFdsArriveInOrder() throws {
        let (old, new) = try pair()
        let files = try (0..<20).map { _ in try EventFD() }
        try old.send(frame: Array("state".utf8))
        try old.send(descriptors: files.map(\.descriptor))
        try old.send(frame: [])
        XCTAssertEqual(try new.receiveFrame(timeoutMilliseconds: 1000), Array("state".utf8))
        let received = try new.receiveDescriptors(count: 20, timeoutMilliseconds: 1000)
        XCTAssertEqual(received.count, 20)
        // Each received fd is the same eventfd: a signal through one is read through the other.
        files[13].signal()
        var value: UInt64 = 0
        XCTAssertEqual(withUnsafeMutableBytes(of: &value) { (try? received[13].read(into: $0)) ?? 0 }, 8)
        XCTAssertEqual(value, 1)
        XCTAssertEqual(try new.receiveFrame(timeoutMilliseconds: 1000), [], "the next frame, not swallowed by the batches")
        XCTAssertEqual(new.peerUserID, PeerIdentity.ownUserID)
    }

    func testSilentPeerTimesOut() throws {
        let (old, new) = try pair()
        let start = MonotonicClock.nanoseconds()
        XCTAssertThrowsError(try new.receiveFrame(timeoutMilliseconds: 100)) { XCTAssertTrue("\($0)".contains("timed out"), "\($0)") }
        XCTAssertLessThan(MonotonicClock.nanoseconds() - start, 2_000_000_000)
        XCTAssertFalse(new.waitForClose(timeoutMilliseconds: 50), "the peer is still there")
        withExtendedLifetime(old) {}
    }

    func testHangUpIsAnErrorAndWaitForCloseSeesIt() throws {
        var (old, new) = try pair()
        try old.send(frame: [1, 2, 3, 4, 5])
        old.socket.close()
        XCTAssertEqual(try new.receiveFrame(timeoutMilliseconds: 1000), [1, 2, 3, 4, 5])
        XCTAssertThrowsError(try new.receiveDescriptors(count: 1, timeoutMilliseconds: 1000))
        (old, new) = try pair()
        old.socket.close()
        XCTAssertTrue(new.waitForClose(timeoutMilliseconds: 1000))
    }

    func testOversizedFrameRefused() throws {
        let (old, new) = try pair()
        _ = try UnixSocket.send(old.socket, bytes: [0xff, 0xff, 0xff, 0x7f])
        XCTAssertThrowsError(try new.receiveFrame(timeoutMilliseconds: 1000)) { XCTAssertTrue("\($0)".contains("announced"), "\($0)") }
    }
}
