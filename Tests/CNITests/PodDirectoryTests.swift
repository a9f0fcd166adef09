import Foundation
import VhostSystem
import XCTest
@testable import vhost_switch_cni

/// What DEL may remove on the host: only the plugin's own, marked pod directory and what is in
/// it for this interface, never through a symlink. In a temporary directory, no daemon.
final class PodDirectoryTests: XCTestCase {
    var root = ""
    let files = FileManager.default

    override func setUpWithError() throws {
        root = NSTemporaryDirectory() + "ops-cni-pods-" + String(UInt32.random(in: 0...UInt32.max), radix: 36)
        try files.createDirectory(atPath: root, withIntermediateDirectories: true)
    }

    override func tearDown() { try? files.removeItem(atPath: root) }

    func pod(_ relative: String = "pods/default_testpmd/net1.sock") -> PodDirectory { PodDirectory(root: root, socketPath: relative) }

    /// A unix socket file at `path`, as a front-end in server mode leaves one.
    func makeSocket(_ path: String) throws {
        let listener = try UnixSocket.listen(path: path)
        listener.close()
        XCTAssertEqual(FileSystem.kind(at: path), .socket)
    }

    func testTheDirectoryThePluginCreatedIsMarkedAndRemoved() throws {
        try pod().prepare()
        let directory = root + "/pods/default_testpmd"
        XCTAssertEqual(try files.contentsOfDirectory(atPath: directory), [PodDirectory.markerName])
        try makeSocket(directory + "/net1.sock")
        pod().cleanUp(removeSocket: true)
        XCTAssertFalse(files.fileExists(atPath: directory))
        XCTAssertTrue(files.fileExists(atPath: root + "/pods"), "socketDir itself stays")
    }

    func testASecondInterfaceKeepsTheDirectory() throws {
        try pod().prepare()
        try pod("pods/default_testpmd/net2.sock").prepare()
        let directory = root + "/pods/default_testpmd"
        try makeSocket(directory + "/net1.sock")
        try makeSocket(directory + "/net2.sock")
        pod().cleanUp(removeSocket: true)
        XCTAssertEqual(Set(try files.contentsOfDirectory(atPath: directory)), [PodDirectory.markerName, "net2.sock"])
        pod("pods/default_testpmd/net2.sock").cleanUp(removeSocket: true)
        XCTAssertFalse(files.fileExists(atPath: directory))
    }

    func testServerModeLeavesTheSocketToTheDaemon() throws {
        try pod().prepare()
        try makeSocket(root + "/pods/default_testpmd/net1.sock")
        pod().cleanUp(removeSocket: false)
        XCTAssertEqual(FileSystem.kind(at: root + "/pods/default_testpmd/net1.sock"), .socket)
    }

    func testADirectoryThePluginDidNotCreateIsLeftAlone() throws {
        let directory = root + "/pods/default_testpmd"
        try files.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try makeSocket(directory + "/net1.sock")
        try pod().prepare()
        XCTAssertFalse(files.fileExists(atPath: directory + "/" + PodDirectory.markerName), "an existing directory is not adopted")
        pod().cleanUp(removeSocket: true)
        XCTAssertEqual(FileSystem.kind(at: directory + "/net1.sock"), .socket)
        // A forged marker with other contents is not the plugin's.
        try "not the marker\n".write(toFile: directory + "/" + PodDirectory.markerName, atomically: false, encoding: .utf8)
        pod().cleanUp(removeSocket: true)
        XCTAssertEqual(FileSystem.kind(at: directory + "/net1.sock"), .socket)
        XCTAssertTrue(files.fileExists(atPath: directory + "/" + PodDirectory.markerName))
    }

    func testASymlinkedPodDirectoryIsNotFollowed() throws {
        // Somewhere else, a directory that looks exactly like one of ours.
        let victim = root + "/victim"
        try pod("victim-parent/victim/net1.sock").prepare()
        try files.moveItem(atPath: root + "/victim-parent/victim", toPath: victim)
        try makeSocket(victim + "/net1.sock")
        try files.createDirectory(atPath: root + "/pods", withIntermediateDirectories: true)
        try files.createSymbolicLink(atPath: root + "/pods/default_testpmd", withDestinationPath: victim)

        pod().cleanUp(removeSocket: true)
        XCTAssertEqual(FileSystem.kind(at: victim + "/net1.sock"), .socket)
        XCTAssertTrue(files.fileExists(atPath: victim + "/" + PodDirectory.markerName))
        XCTAssertEqual(FileSystem.kind(at: root + "/pods/default_testpmd"), .symlink)
        XCTAssertThrowsError(try pod().prepare(), "ADD refuses a symlink where the pod directory belongs")
    }

    func testASymlinkedSocketDirIsNotFollowed() throws {
        let victim = root + "/elsewhere"
        try pod("elsewhere/default_testpmd/net1.sock").prepare()
        try makeSocket(victim + "/default_testpmd/net1.sock")
        try files.createSymbolicLink(atPath: root + "/pods", withDestinationPath: victim)
        pod().cleanUp(removeSocket: true)
        XCTAssertEqual(FileSystem.kind(at: victim + "/default_testpmd/net1.sock"), .socket)
    }

    func testASymlinkInPlaceOfTheSocketIsNotUnlinked() throws {
        try pod().prepare()
        let target = root + "/target.sock"
        try makeSocket(target)
        try files.createSymbolicLink(atPath: root + "/pods/default_testpmd/net1.sock", withDestinationPath: target)
        pod().cleanUp(removeSocket: true)
        XCTAssertEqual(FileSystem.kind(at: root + "/pods/default_testpmd/net1.sock"), .symlink)
        XCTAssertEqual(FileSystem.kind(at: target), .socket)
    }

    func testAFileInPlaceOfTheSocketIsNotUnlinked() throws {
        try pod().prepare()
        let file = root + "/pods/default_testpmd/net1.sock"
        try "data\n".write(toFile: file, atomically: false, encoding: .utf8)
        pod().cleanUp(removeSocket: true)
        XCTAssertEqual(FileSystem.kind(at: file), .regular)
    }
}
