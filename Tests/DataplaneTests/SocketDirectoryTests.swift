import XCTest
import Glibc
@testable import Dataplane

final class SocketDirectoryTests: XCTestCase {
    let directory = SocketDirectory(root: "/run/vs/sockets/")

    func testRelativePathIsPlacedInside() throws {
        XCTAssertEqual(try directory.resolve("pod1/eth0.sock"), "/run/vs/sockets/pod1/eth0.sock")
        XCTAssertEqual(try directory.resolve("/run/vs/sockets/a.sock"), "/run/vs/sockets/a.sock")
    }

    func testDotDotIsRefused() {
        XCTAssertThrowsError(try directory.resolve("../etc/passwd"))
        XCTAssertThrowsError(try directory.resolve("a/../../x"))
        XCTAssertThrowsError(try directory.resolve("/run/vs/sockets/../x"))
    }

    func testAbsolutePathOutsideIsRefused() {
        XCTAssertThrowsError(try directory.resolve("/tmp/x.sock"))
        XCTAssertThrowsError(try directory.resolve("/run/vs/socketsX/x.sock"))
    }

    func testControlCharactersAndEmptyAreRefused() {
        XCTAssertThrowsError(try directory.resolve(""))
        XCTAssertThrowsError(try directory.resolve("a\nb"))
        XCTAssertThrowsError(try directory.resolve("/run/vs/sockets/"))
    }

    func testOverlongPathIsRefused() {
        XCTAssertThrowsError(try directory.resolve(String(repeating: "a", count: 120)))
    }

    func testSymlinkOnTheWayIsRefused() throws {
        var template = Array("/tmp/vs-dir-XXXXXX".utf8CString)
        let root = String(cString: mkdtemp(&template)!)
        XCTAssertEqual(symlink("/etc", root + "/evil"), 0)
        let confined = SocketDirectory(root: root)
        let path = try confined.resolve("evil/x.sock")
        XCTAssertThrowsError(try confined.prepareParent(of: path))
        let fine = try confined.resolve("pod/x.sock")
        XCTAssertNoThrow(try confined.prepareParent(of: fine))
        var info = stat()
        XCTAssertEqual(lstat(root + "/pod", &info), 0)
    }
}
