import XCTest
import Glibc
@testable import VhostSystem

final class UnixSocketTests: XCTestCase {
    func testDescriptorsTravelWithTheMessage() throws {
        let (a, b) = try UnixSocket.pair()
        let event = try EventFD()
        XCTAssertEqual(try UnixSocket.send(a, bytes: [1, 2, 3], fds: [event.descriptor]), 3)
        let received = try UnixSocket.receive(b, maxBytes: 16)
        XCTAssertEqual(received.bytes, [1, 2, 3])
        XCTAssertEqual(received.descriptors.count, 1)
        XCTAssertFalse(received.descriptorsTruncated)
        // The received fd is the same eventfd: a signal on one is read on the other.
        event.signal()
        XCTAssertEqual(EventFD(adopting: received.descriptors[0]).drain(), 1)
    }

    func testExcessDescriptorsAreClosedAndReported() throws {
        let (a, b) = try UnixSocket.pair()
        let events = try (0..<6).map { _ in try EventFD() }
        let before = FileDescriptor.openCount()
        _ = try UnixSocket.send(a, bytes: [9], fds: events.map(\.descriptor))
        let received = try UnixSocket.receive(b, maxBytes: 4, maxDescriptors: 2)
        XCTAssertEqual(received.descriptors.count, 2)
        XCTAssertTrue(received.descriptorsTruncated)
        XCTAssertEqual(FileDescriptor.openCount(), before + 2, "only the kept fds stay open")
    }

    func testReceiveOnEmptySocketWouldBlock() throws {
        let (a, b) = try UnixSocket.pair()
        try b.setNonBlocking()
        try withExtendedLifetime(a) {
            XCTAssertThrowsError(try UnixSocket.receive(b, maxBytes: 4)) { error in
                XCTAssertTrue((error as? SystemError)?.wouldBlock ?? false)
            }
        }
    }

    func testPeerCloseReadsZeroBytes() throws {
        let (a, b) = try UnixSocket.pair()
        a.close()
        XCTAssertEqual(try UnixSocket.receive(b, maxBytes: 4).bytes, [])
    }

    func testStaleSocketFileIsReplacedButLiveOneIsNot() throws {
        let dir = try temporaryDirectory()
        let path = dir + "/s.sock"
        var listener: FileDescriptor? = try UnixSocket.listen(path: path)
        XCTAssertThrowsError(try UnixSocket.listen(path: path)) { error in
            XCTAssertEqual((error as? SystemError)?.errno, EADDRINUSE)
        }
        listener?.close()
        listener = nil
        // The file is still there, but nobody listens: a crashed run's leftover.
        XCTAssertEqual(access(path, F_OK), 0)
        let replacement = try UnixSocket.listen(path: path)
        let client = try UnixSocket.connect(path: path)
        XCTAssertNotNil(client)
        var accepted: FileDescriptor?
        for _ in 0..<100 where accepted == nil {
            accepted = try UnixSocket.accept(replacement)
            if accepted == nil { usleep(1000) }
        }
        XCTAssertNotNil(accepted)
    }

    func testRegularFileAtSocketPathIsNotDeleted() throws {
        let dir = try temporaryDirectory()
        let path = dir + "/data"
        let fd = open(path, O_CREAT | O_WRONLY, 0o600)
        XCTAssertGreaterThanOrEqual(fd, 0)
        close(fd)
        XCTAssertThrowsError(try UnixSocket.listen(path: path))
        XCTAssertEqual(access(path, F_OK), 0)
    }

    func testTooLongPathIsRefused() throws {
        let path = "/tmp/" + String(repeating: "x", count: 200)
        XCTAssertThrowsError(try UnixSocket.listen(path: path)) { error in
            XCTAssertEqual((error as? SystemError)?.errno, ENAMETOOLONG)
        }
    }
}

func temporaryDirectory() throws -> String {
    var template = Array("/tmp/vhost-switch-test-XXXXXX".utf8CString)
    guard let result = mkdtemp(&template) else { throw SystemError("mkdtemp", errno: errno) }
    return String(cString: result)
}
