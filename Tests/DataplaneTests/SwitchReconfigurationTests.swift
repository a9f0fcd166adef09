import XCTest
@testable import Dataplane

final class SwitchReconfigurationTests: XCTestCase {
    func testPortsAddAndRemoveWhileThreadsRun() throws {
        var configuration = Switch.Configuration()
        configuration.pollThreads = 2
        let fabric = try Switch(configuration: configuration)
        try fabric.start()
        defer { fabric.stop() }
        var ids: [Int] = []
        for i in 0..<50 { ids.append(try XCTUnwrap(fabric.addPort(name: "p\(i)"))) }
        XCTAssertEqual(Set(ids).count, 50)
        for id in ids { fabric.removePort(id: id) }
        XCTAssertEqual(fabric.addPort(name: "again"), 0, "ids are reused once free")
    }
}
