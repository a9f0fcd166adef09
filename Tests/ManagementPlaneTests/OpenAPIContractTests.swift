import Dataplane
import Foundation
import VhostUser
import XCTest
@testable import ManagementPlane

/// The OpenAPI document is the contract: every value the server can emit is in it, taken from
/// the code's own definitions, and the input rules agree (issue 19, "The OpenAPI is the
/// contract").
final class OpenAPIContractTests: XCTestCase {
    private static let document: String = {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return (try? String(contentsOf: root.appendingPathComponent("openapi/vhost-switch.yaml"), encoding: .utf8)) ?? ""
    }()

    /// The values of the first `enum: [...]` after `anchor` (a flow sequence, possibly over
    /// several lines).
    private func enumValues(after anchor: String, file: StaticString = #filePath, line: UInt = #line) -> Set<String> {
        let text = Self.document
        guard let anchorRange = text.range(of: anchor),
              let start = text.range(of: "enum: [", range: anchorRange.upperBound..<text.endIndex),
              let end = text.range(of: "]", range: start.upperBound..<text.endIndex) else {
            XCTFail("openapi/vhost-switch.yaml has no enum after \(anchor)", file: file, line: line)
            return []
        }
        return Set(text[start.upperBound..<end.lowerBound].split(separator: ",").map { $0.trimmingCharacters(in: .whitespacesAndNewlines) })
    }

    /// Every `$ref` names a schema the document defines, and no schema is defined twice (a
    /// merge once dropped `PortPolicyPatch:`'s header line, which left PATCH's body unresolved
    /// and folded its keys into the schema above it).
    func testEveryReferencedSchemaIsDefinedOnce() throws {
        // components/schemas: from "  schemas:" to the next key at its level (or the end).
        let lines = Self.document.split(separator: "\n", omittingEmptySubsequences: false)
            .drop { $0 != "  schemas:" }.dropFirst()
            .prefix { !($0.hasPrefix("  ") && !$0.hasPrefix("   ")) && !($0.first?.isLetter ?? false) }
        let defined = lines.compactMap { line -> String? in
            guard line.hasPrefix("    "), !line.hasPrefix("     "), line.hasSuffix(":") else { return nil }
            return String(line.dropFirst(4).dropLast())
        }
        XCTAssertEqual(defined.count, Set(defined).count, "schemas defined twice: \(defined.filter { name in defined.filter { $0 == name }.count > 1 })")
        let prefix = "#/components/schemas/"
        var referenced = Set<String>()
        var rest = Self.document[...]
        while let range = rest.range(of: prefix) {
            let name = rest[range.upperBound...].prefix { $0.isLetter || $0.isNumber || $0 == "_" }
            referenced.insert(String(name))
            rest = rest[range.upperBound...]
        }
        XCTAssertFalse(referenced.isEmpty)
        XCTAssertEqual(referenced.subtracting(defined), [], "referenced but not defined")
    }

    func testEveryEventTypeIsInTheSchema() {
        XCTAssertEqual(enumValues(after: "\n    EventType:\n"), Set(SwitchEvent.Kind.allCases.map(\.rawValue)))
    }

    func testEveryConnectionStateIsInTheSchema() {
        XCTAssertEqual(enumValues(after: "\n    ConnectionState:\n"), Set(VhostUserDeviceInfo.ConnectionState.allCases.map(\.rawValue)))
    }

    /// A port's state is a connection state, or the pending state of a saved port not
    /// restored yet.
    func testThePendingPortStateIsInTheSchema() {
        XCTAssertEqual(enumValues(after: "oneOf:\n            - $ref: \"#/components/schemas/ConnectionState\"\n"),
                       [ManagementAPI.pendingPortState])
        XCTAssertFalse(VhostUserDeviceInfo.ConnectionState.allCases.map(\.rawValue).contains(ManagementAPI.pendingPortState),
                       "pending must not collide with a connection state")
    }

    func testEveryErrorCodeIsInTheSchema() {
        XCTAssertEqual(enumValues(after: "\n    Error:\n"), Set(APIError.Code.allCases.map(\.rawValue)))
    }

    /// The schema's socket path pattern and SocketDirectory.resolve accept the same relative
    /// paths (the absolute form depends on the configured directory: checked separately).
    func testSocketPathPatternAndServerAgree() throws {
        let text = Self.document
        let anchor = try XCTUnwrap(text.range(of: "description: 'Relative to the socket directory"))
        let start = try XCTUnwrap(text.range(of: "pattern: \"", range: anchor.upperBound..<text.endIndex))
        let end = try XCTUnwrap(text.range(of: "\"", range: start.upperBound..<text.endIndex))
        let pattern = try NSRegularExpression(pattern: String(text[start.upperBound..<end.lowerBound]))
        func schemaAccepts(_ path: String) -> Bool {
            pattern.firstMatch(in: path, range: NSRange(path.startIndex..., in: path)) != nil
        }
        let directory = SocketDirectory(root: "/run/vs")
        let long = String(repeating: "a", count: 64)
        let samples = ["vm.sock", "pods/default_web-0/net1.sock", "a/b/c/d/e/f/g/h", "a/b/c/d/e/f/g/h/i", long, long + "b",
                       "_x", ".x", "-x", "x/.", "x/..", "../x", "x//y", "x/", "x y", "x:y", "é", "a.b-c_d", "x\u{1}",
                       "0/1/2.sock", "UPPER/lower.SOCK"]
        for path in samples {
            let serverAccepts = (try? directory.resolve(path)) != nil
            XCTAssertEqual(serverAccepts, schemaAccepts(path), "\"\(path)\": server \(serverAccepts), schema \(schemaAccepts(path))")
        }
        // The absolute form: the socket directory, then a relative path the pattern accepts.
        XCTAssertEqual(try directory.resolve("/run/vs/pods/net1.sock"), "/run/vs/pods/net1.sock")
        XCTAssertTrue(schemaAccepts("/run/vs/pods/net1.sock"))
        XCTAssertThrowsError(try directory.resolve("/run/other/net1.sock"))
        XCTAssertThrowsError(try directory.resolve("/run/vs/pods/.hidden"))
    }
}
