import Dataplane
import Foundation
@testable import PortService
import VhostSystem
import XCTest
@testable import ManagementPlane

/// The management plane's hardening rules as pure values (ManagementHardeningDaemonTests
/// shows each on a live daemon).
final class ManagementHardeningUnitTests: XCTestCase {
    private func address(_ text: String) throws -> TCPSocket.Address { try XCTUnwrap(TCPSocket.Address(parsing: text)) }

    func testTCPNeedsATokenOrInsecureOnLoopback() throws {
        XCTAssertNil(try TCPListenerPolicy.check(listen: address("0.0.0.0:9870"), hasToken: true, allowInsecure: false))
        let warning = try TCPListenerPolicy.check(listen: address("127.0.0.1:9870"), hasToken: false, allowInsecure: true)
        XCTAssertTrue(warning?.contains("--insecure-tcp") ?? false, "\(String(describing: warning))")
        XCTAssertThrowsError(try TCPListenerPolicy.check(listen: address("127.0.0.1:9870"), hasToken: false, allowInsecure: false)) {
            XCTAssertTrue("\($0)".contains("--api-token-file"), "\($0)")
        }
        XCTAssertThrowsError(try TCPListenerPolicy.check(listen: address("10.0.0.1:9870"), hasToken: false, allowInsecure: true)) {
            XCTAssertTrue("\($0)".contains("loopback"), "\($0)")
        }
        XCTAssertThrowsError(try TCPListenerPolicy.check(listen: address("[::]:9870"), hasToken: false, allowInsecure: true))
    }

    func testHostHeaderMustNameTheListener() throws {
        let loopback = HostHeaderPolicy(listen: try address("127.0.0.1:0"), port: 9870, extraNames: ["Switch.Example"])
        for host in ["127.0.0.1:9870", "localhost:9870", "LOCALHOST", "[::1]:9870", "127.0.0.1", "switch.example:9870"] {
            XCTAssertTrue(loopback.allows(host), host)
        }
        for host in [nil, "", "evil.example", "evil.example:9870", "127.0.0.1:80", "localhost:9870x", "10.0.0.1:9870",
                     "localhost.evil.example", "127.0.0.1.nip.io:9870", "[::1", ":9870"] as [String?] {
            XCTAssertFalse(loopback.allows(host), host ?? "nil")
        }
        let specific = HostHeaderPolicy(listen: try address("10.1.2.3:9870"), port: 9870)
        XCTAssertTrue(specific.allows("10.1.2.3:9870"))
        XCTAssertFalse(specific.allows("localhost:9870"), "localhost is not this listener")
        XCTAssertFalse(specific.allows("10.1.2.4:9870"))
        let wildcard = HostHeaderPolicy(listen: try address("0.0.0.0:9870"), port: 9870)
        XCTAssertTrue(wildcard.allows("192.168.7.9:9870"), "an IP literal cannot be rebound")
        XCTAssertTrue(wildcard.allows("[fe80::1]:9870"))
        XCTAssertFalse(wildcard.allows("node.evil.example:9870"))
        XCTAssertFalse(wildcard.allows("1.2.3.4.5:9870"))
    }

    func testTokenFileMustBeOwnerOnlyAndOwnedByRootOrUs() throws {
        XCTAssertNil(BearerToken.ownershipProblem(FileStatus(size: 20, blockSize: 4096, isRegularFile: true, permissions: 0o600, ownerID: 0), ownUserID: 1000))
        XCTAssertNil(BearerToken.ownershipProblem(FileStatus(size: 20, blockSize: 4096, isRegularFile: true, permissions: 0o400, ownerID: 1000), ownUserID: 1000))
        for mode: UInt32 in [0o644, 0o640, 0o604, 0o620, 0o660] {
            let problem = BearerToken.ownershipProblem(FileStatus(size: 20, blockSize: 4096, isRegularFile: true, permissions: mode, ownerID: 0), ownUserID: 0)
            XCTAssertTrue(problem?.contains("0600") ?? false, "mode \(String(mode, radix: 8)): \(String(describing: problem))")
        }
        let foreign = BearerToken.ownershipProblem(FileStatus(size: 20, blockSize: 4096, isRegularFile: true, permissions: 0o600, ownerID: 1234), ownUserID: 0)
        XCTAssertTrue(foreign?.contains("uid 1234") ?? false, "\(String(describing: foreign))")

        // The file itself: fstat of the descriptor the token is read from.
        let path = NSTemporaryDirectory() + "vsd-token-\(UInt32.random(in: 0...UInt32.max))"
        defer { try? FileManager.default.removeItem(atPath: path) }
        try "0123456789abcdef-token\n".write(toFile: path, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: path)
        XCTAssertThrowsError(try BearerToken.load(path: path)) { XCTAssertTrue("\($0)".contains("mode 0644"), "\($0)") }
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: path)
        XCTAssertTrue(try BearerToken.load(path: path).matches(authorizationHeader: "Bearer 0123456789abcdef-token"))
    }

    func testTokenSourceReloadKeepsTheOldTokenOnFailure() throws {
        let path = NSTemporaryDirectory() + "vsd-token-\(UInt32.random(in: 0...UInt32.max))"
        defer { try? FileManager.default.removeItem(atPath: path) }
        func write(_ token: String, mode: Int) throws {
            try (token + "\n").write(toFile: path, atomically: true, encoding: .utf8)
            try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: path)
        }
        try write("first-token-0123456789", mode: 0o600)
        let source = try APITokenSource(path: path)
        try write("second-token-0123456789", mode: 0o600)
        XCTAssertTrue(source.matches(authorizationHeader: "Bearer first-token-0123456789"), "read once until reloaded")
        try source.reload()
        XCTAssertTrue(source.matches(authorizationHeader: "Bearer second-token-0123456789"))
        XCTAssertFalse(source.matches(authorizationHeader: "Bearer first-token-0123456789"))
        try write("third-token-0123456789", mode: 0o644)
        XCTAssertThrowsError(try source.reload())
        XCTAssertTrue(source.matches(authorizationHeader: "Bearer second-token-0123456789"), "a refused file keeps the token in use")
    }

    func testEveryLoopbackAddressIsOneClient() {
        XCTAssertEqual(APIClientIdentity.key(ipAddress: "127.0.0.1"), "ip:loopback")
        XCTAssertEqual(APIClientIdentity.key(ipAddress: "127.0.0.2"), "ip:loopback")
        XCTAssertEqual(APIClientIdentity.key(ipAddress: "::1"), "ip:loopback")
        XCTAssertEqual(APIClientIdentity.key(ipAddress: "::ffff:127.9.9.9"), "ip:loopback")
        XCTAssertEqual(APIClientIdentity.key(ipAddress: "::ffff:10.0.0.1"), "ip:10.0.0.1")
        XCTAssertEqual(APIClientIdentity.key(ipAddress: "10.0.0.1"), "ip:10.0.0.1")
        XCTAssertNotEqual(APIClientIdentity.key(ipAddress: "10.0.0.1"), APIClientIdentity.key(ipAddress: "10.0.0.2"))
    }

    func testEventStreamsAreLimitedPerClientAndInAll() throws {
        let hub = EventHub(limits: .init(total: 3, perClient: 2))
        let first = try hub.subscribe(since: nil, filter: .init(), client: "uid:0")
        _ = try hub.subscribe(since: nil, filter: .init(), client: "uid:0")
        XCTAssertThrowsError(try hub.subscribe(since: nil, filter: .init(), client: "uid:0")) {
            XCTAssertEqual($0 as? EventHub.Refusal, .clientLimit(2))
        }
        _ = try hub.subscribe(since: nil, filter: .init(), client: "uid:1000")
        XCTAssertThrowsError(try hub.subscribe(since: nil, filter: .init(), client: "ip:10.0.0.1")) {
            XCTAssertEqual($0 as? EventHub.Refusal, .totalLimit(3))
        }
        // A stream whose connection ended no longer counts.
        first.markFinished()
        XCTAssertNoThrow(try hub.subscribe(since: nil, filter: .init(), client: "uid:0"))
    }

    func testReadinessReportsACounterThatStoppedMoving() {
        final class Clock: @unchecked Sendable { var now: UInt64 = 1_000_000_000 }
        let clock = Clock()
        let monitor = ReadinessMonitor(stallSeconds: 5, clock: { clock.now })
        func look(_ control: UInt64, _ pmd: UInt64) -> [String: ReadinessMonitor.Check] {
            Dictionary(uniqueKeysWithValues: monitor.check([ProgressCounter(name: "control-loop", value: control),
                                                            ProgressCounter(name: "pmd0", value: pmd)]).map { ($0.name, $0) })
        }
        XCTAssertFalse(look(1, 1).values.contains { $0.stalled }, "the first look knows nothing yet")
        clock.now += 3_000_000_000
        XCTAssertFalse(look(2, 1).values.contains { $0.stalled })
        clock.now += 3_000_000_000
        var checks = look(3, 1)
        XCTAssertTrue(checks["pmd0"]?.stalled ?? false, "6 s without progress")
        XCTAssertEqual(checks["pmd0"]?.secondsWithoutProgress, 6)
        XCTAssertFalse(checks["control-loop"]?.stalled ?? true)
        clock.now += 1_000_000_000
        checks = look(3, 2)
        XCTAssertFalse(checks["pmd0"]?.stalled ?? true, "moving again")
        XCTAssertEqual(checks["control-loop"]?.secondsWithoutProgress, 1)
    }

    func testPendingRestoreBacksOffUpToAMinute() {
        var entry = PendingRestore(spec: PortSpec(name: "p", kind: .afPacket(interface: "eth9")), lastError: "", attempts: 0, nextAttemptAt: 0)
        var delays: [UInt64] = []
        for attempt in 0..<9 {
            entry.failed(PortService.PortError(.invalid, "no interface named eth9 (\(attempt))"), now: 0)
            delays.append(entry.nextAttemptAt / 1_000_000_000)
        }
        XCTAssertEqual(delays, [1, 2, 4, 8, 16, 32, 60, 60, 60])
        XCTAssertEqual(entry.attempts, 9)
        XCTAssertEqual(entry.lastError, "no interface named eth9 (8)")
    }
}
