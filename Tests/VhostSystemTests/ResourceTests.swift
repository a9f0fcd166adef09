import XCTest
import Glibc
@testable import VhostSystem

final class ResourceTests: XCTestCase {
    func testMemfdMappingIsSharedAndReleased() throws {
        let before = FileDescriptor.openCount()
        do {
            let fd = try MemFD.create(name: "test", size: 8192)
            XCTAssertEqual(try fd.fileSize(), 8192)
            XCTAssertTrue(try fd.isMappableFile())
            let first = try MemoryMapping(descriptor: fd, length: 8192)
            let second = try MemoryMapping(descriptor: fd, length: 4096, offset: 4096)
            first.base.storeBytes(of: 0xAB, toByteOffset: 4096, as: UInt8.self)
            XCTAssertEqual(second.base.load(as: UInt8.self), 0xAB)
        }
        XCTAssertEqual(FileDescriptor.openCount(), before)
    }

    func testFileDescriptorClosesExactlyOnce() throws {
        let before = FileDescriptor.openCount()
        let fd = try MemFD.create(name: "once", size: 1)
        XCTAssertEqual(FileDescriptor.openCount(), before + 1)
        fd.close()
        fd.close()
        XCTAssertFalse(fd.isOpen)
        XCTAssertEqual(FileDescriptor.openCount(), before)
    }

    func testEpollReportsEventFdWithItsToken() throws {
        let epoll = try Epoll()
        let event = try EventFD()
        try epoll.add(event.rawValue, token: 42)
        var events: [Epoll.Event] = []
        try epoll.wait(into: &events, timeoutMilliseconds: 0)
        XCTAssertTrue(events.isEmpty)
        event.signal()
        try epoll.wait(into: &events, timeoutMilliseconds: 1000)
        XCTAssertEqual(events.map(\.token), [42])
        XCTAssertTrue(events[0].readable)
        XCTAssertEqual(event.drain(), 1)
        XCTAssertEqual(event.drain(), 0)
    }

    func testSystemCallErrorCarriesErrno() {
        XCTAssertThrowsError(try systemCall("close(-1)") { Glibc.close(-1) }) { error in
            XCTAssertEqual(error as? SystemError, SystemError("close(-1)", errno: EBADF))
        }
    }

    func testThreadRunsWithAffinity() throws {
        let done = try EventFD(nonBlocking: false)
        let thread = try SystemThread(name: "test-thread", cpus: [0]) { done.signal() }
        thread.join()
        XCTAssertEqual(done.drain(), 1)
    }
}
