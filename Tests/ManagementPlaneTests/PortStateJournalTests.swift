import Dataplane
import Foundation
import Logging
import PortService
import XCTest
@testable import ManagementPlane

/// The state directory's snapshot and journal: one appended line per change, replayed in
/// order at load, folded into the snapshot when long, a torn last line dropped.
final class PortStateJournalTests: XCTestCase {
    private var directory = ""

    override func setUpWithError() throws {
        directory = NSTemporaryDirectory() + "journal-\(UUID().uuidString)"
    }

    override func tearDown() { try? FileManager.default.removeItem(atPath: directory) }

    private func store(compaction: Int = 4096) -> PortStateStore {
        PortStateStore(directory: directory, logger: Logger(label: "test"), compactionRecords: compaction)
    }

    private func port(_ name: String, vlan: UInt16? = nil) -> PortSpec {
        var spec = PortSpec(name: name, kind: .vhostUser(.init(socketPath: name + ".sock")))
        spec.policy.vlan = vlan
        return spec
    }

    private func lines(_ path: String) -> [String] {
        ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
    }

    func testEachChangeAppendsOneLineAndLoadReplaysThem() throws {
        let writer = store()
        try writer.record(.saved(port("a")))  // the first change writes the snapshot
        let snapshot = try Data(contentsOf: URL(fileURLWithPath: writer.path))
        try writer.record(.saved(port("b")))
        try writer.record(.saved(port("a", vlan: 10)))
        try writer.record(.removed(name: "b"))
        try writer.record(.saved(port("c")))
        XCTAssertEqual(lines(writer.journalPath).count, 4)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: writer.path)), snapshot, "the snapshot is not rewritten per change")

        let loaded = store().load()
        XCTAssertEqual(loaded.problems, [])
        XCTAssertEqual(loaded.journalRecords, 4)
        XCTAssertEqual(loaded.specs.map(\.name), ["a", "c"])
        XCTAssertEqual(loaded.specs.first?.policy.vlan, 10)
    }

    func testATornLastLineIsDroppedAndABadMiddleLineIsKeptAside() throws {
        let writer = store()
        try writer.record(.saved(port("a")))
        try writer.record(.saved(port("b")))
        let handle = try XCTUnwrap(FileHandle(forWritingAtPath: writer.journalPath))
        handle.seekToEndOfFile()
        handle.write(Data(#"{"saved": {"name": "c", "ty"#.utf8))
        handle.closeFile()
        let torn = store().load()
        XCTAssertEqual(torn.problems, [], "a write cut short by a crash was never acknowledged")
        XCTAssertEqual(torn.specs.map(\.name), ["a", "b"])

        try "{\"removed\": \"a\"}\nnot json\n{\"saved\": {\"name\": \"d\", \"type\": \"af-packet\", \"interface\": \"eth0\"}}\n"
            .write(toFile: writer.journalPath, atomically: false, encoding: .utf8)
        let bad = store().load()
        XCTAssertEqual(bad.problems.count, 1, "\(bad.problems)")
        XCTAssertEqual(bad.specs.map(\.name), ["d"], "the good records on both sides of the bad one apply")
        XCTAssertNotNil(bad.movedAside)
        XCTAssertFalse(FileManager.default.fileExists(atPath: writer.journalPath), "the bad journal is moved aside")
    }

    func testLongJournalIsFoldedIntoTheSnapshot() throws {
        let writer = store(compaction: 3)
        for name in ["a", "b", "c", "d", "e"] { try writer.record(.saved(port(name))) }
        // a: snapshot; b, c, d: journal; e: compaction (snapshot of all five, empty journal).
        XCTAssertEqual(lines(writer.journalPath).count, 0)
        let snapshot = try JSON.parse(Array(try Data(contentsOf: URL(fileURLWithPath: writer.path))))
        XCTAssertEqual(snapshot.objectValue?["ports"]?.arrayValue?.count, 5)
        try writer.record(.removed(name: "a"))
        XCTAssertEqual(lines(writer.journalPath).count, 1)
        XCTAssertEqual(store().load().specs.map(\.name), ["b", "c", "d", "e"])
    }

    func testSavedPortsTheServiceLacksStaySaved() throws {
        let writer = store()
        try writer.save([port("restored"), port("failed-to-restore")])
        let reader = store()
        _ = reader.load()
        reader.saveMissing([port("restored"), port("from-config")])
        try reader.record(.removed(name: "restored"))
        XCTAssertEqual(store().load().specs.map(\.name), ["failed-to-restore", "from-config"])
    }

    func testSnapshotKeepsCreationOrderThroughUpdatesRemovalsAndReadds() throws {
        let writer = store(compaction: 6)
        for name in ["a", "b", "c", "d"] { try writer.record(.saved(port(name))) }
        try writer.record(.saved(port("b", vlan: 20)))  // updated in place
        try writer.record(.removed(name: "a"))
        try writer.record(.saved(port("a")))  // back at the end
        try writer.record(.saved(port("e")))  // the first change wrote the snapshot; past 6 journal lines, this folds them
        XCTAssertEqual(lines(writer.journalPath), [], "the journal was folded into the snapshot")
        let loaded = store().load().specs
        XCTAssertEqual(loaded.map(\.name), ["b", "c", "d", "a", "e"])
        XCTAssertEqual(loaded.first?.policy.vlan, 20)
    }
}
