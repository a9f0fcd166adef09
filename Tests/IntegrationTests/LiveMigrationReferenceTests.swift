import Foundation
import TestSupport
import XCTest

/// The migration load test (LiveMigrationTests.testMigrationUnderLoad) with OVS-DPDK, that is
/// DPDK's own vhost library, in the switch's place: the same guests, QEMU, migration and
/// namespace ping load. It tells whether the load test's intermittent "is not a head" after
/// the hand-over comes from this switch or from the rest of the rig (QEMU under TCG).
/// Gated like the load test, since it is as slow and for the same question:
/// VHOST_SWITCH_MIGRATION_REFERENCE_TEST=1; VHOST_SWITCH_MIGRATION_REFERENCE_RUNS=N repeats
/// the migration N times (fresh guests each time) and counts the failures.
final class LiveMigrationReferenceTests: XCTestCase {
    func testMigrationUnderLoadThroughOvsDpdk() throws {
        let environment = ProcessInfo.processInfo.environment
        guard environment["VHOST_SWITCH_MIGRATION_REFERENCE_TEST"] == "1" else {
            let reason = "a diagnostic for the migration load test; set VHOST_SWITCH_MIGRATION_REFERENCE_TEST=1 to run"
            print("SKIP \(#function): \(reason)")
            throw XCTSkip(reason)
        }
        for reason in [NetworkNamespaceFixture.skipReason(), OvsDpdkBridge.skipReason()].compactMap({ $0 }) {
            print("SKIP \(#function): \(reason)")
            throw XCTSkip(reason)
        }
        if let reason = QemuGuest.printedSkipReason(#function) { throw XCTSkip(reason) }
        let runs = Int(environment["VHOST_SWITCH_MIGRATION_REFERENCE_RUNS"] ?? "") ?? 1
        var failures: [String] = []
        for run in 1...max(runs, 1) {
            let outcome = try migrateOnceUnderLoad(run: run)
            print("[migration/reference] run \(run)/\(runs): \(outcome ?? "clean")")
            if let outcome { failures.append("run \(run): \(outcome)") }
        }
        print("[migration/reference] OVS-DPDK: \(failures.count) of \(runs) migrations under load ended with a guest driver error")
        XCTAssertEqual(failures, [], "migrations through OVS-DPDK that ended with a guest driver error")
    }

    /// One migration under load; nil when the destination guest's console is clean and the
    /// ping goes on, else what went wrong.
    private func migrateOnceUnderLoad(run: Int) throws -> String? {
        let image = try QemuGuest.image()
        let network = try NetworkNamespaceFixture(tag: "lr")
        defer { network.destroy() }
        try network.assignAddress("10.200.14.1/24")
        let guestAddress = "10.200.14.2", mac = "02:00:00:00:0e:02"
        let ovs = try OvsDpdkBridge(tag: "lm\(run)")
        defer { ovs.stop() }
        let sockets = try ovs.addBridge(vhostPorts: ["vha", "vhb"], kernelInterfaces: [network.hostInterface])
        let parameters = [("ip", guestAddress + "/24"), ("mode", "answer")]
        let source = try QemuGuest(QemuGuest.Configuration(name: "src-ref\(run)", socketPath: sockets[0], mac: mac,
                                                           guestParameters: parameters), image: image)
        defer { source.terminate() }
        let incomingPort = try QemuGuest.freeLocalPort()
        let destination = try QemuGuest(QemuGuest.Configuration(name: "dst-ref\(run)", socketPath: sockets[1], mac: mac,
                                                                guestParameters: parameters, incomingPort: incomingPort), image: image)
        defer { destination.terminate() }
        _ = try source.waitForSerial("VS-READY", timeout: 180)
        let load = try NamespacePinger(namespace: network.namespace, target: guestAddress, interval: 0.0025, payloadBytes: 1400)
        defer { load.stop() }
        guard load.waitForReplies(100, timeout: 30) else { return "the load ping never got going: \(load.output.suffix(500))" }
        let result = try source.migrate(toPort: incomingPort, downtimeLimitMs: 50)
        guard result.status == "completed" else { return "migration \(result)" }
        let before = load.replies.count
        _ = load.waitForReplies(before + 400, timeout: 6)
        load.stop()
        let serial = destination.serial
        if let marker = ["is not a head", "BUG", "Call Trace"].first(where: { serial.contains($0) }) {
            return "destination guest console says \"\(marker)\": \(serial.split(separator: "\n").suffix(3).joined(separator: " | "))"
        }
        if load.replies.count - before < 200 { return "the load ping stopped after the migration (\(load.summary()))" }
        return nil
    }
}
