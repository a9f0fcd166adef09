import Dataplane
import Foundation
import PortService
import VhostSystem
import VhostUser
import Virtio
import XCTest
@testable import ManagementPlane

/// The OpenAPI document is the contract: every value the server can emit is in it, taken from
/// the code's own definitions, and the input rules agree (issue 19, "The OpenAPI is the
/// contract"): enums and ranges against the code's constants, patterns against the server's
/// own checks on samples on both sides of each rule.
final class OpenAPIContractTests: XCTestCase {
    private static let document: String = {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return (try? String(contentsOf: root.appendingPathComponent("openapi/vhost-switch.yaml"), encoding: .utf8)) ?? ""
    }()

    /// Where the last of `anchors` ends, each searched for after the one before (a schema,
    /// then a property in it).
    private func location(after anchors: [String]) -> String.Index? {
        let text = Self.document
        var position = text.startIndex
        for anchor in anchors {
            guard let range = text.range(of: anchor, range: position..<text.endIndex) else { return nil }
            position = range.upperBound
        }
        return position
    }

    /// The values of the first `enum: [...]` after `anchors` (a flow sequence, possibly over
    /// several lines).
    private func enumValues(after anchors: String..., file: StaticString = #filePath, line: UInt = #line) -> Set<String> {
        let text = Self.document
        guard let position = location(after: anchors),
              let start = text.range(of: "enum: [", range: position..<text.endIndex),
              let end = text.range(of: "]", range: start.upperBound..<text.endIndex) else {
            XCTFail("openapi/vhost-switch.yaml has no enum after \(anchors)", file: file, line: line)
            return []
        }
        return Set(text[start.upperBound..<end.lowerBound].split(separator: ",").map { $0.trimmingCharacters(in: .whitespacesAndNewlines) })
    }

    /// The first `pattern: "..."` after `anchors`, as a regular expression.
    private func pattern(after anchors: String..., file: StaticString = #filePath, line: UInt = #line) throws -> NSRegularExpression {
        let text = Self.document
        let position = try XCTUnwrap(location(after: anchors), "openapi/vhost-switch.yaml has no \(anchors)", file: file, line: line)
        let start = try XCTUnwrap(text.range(of: "pattern: \"", range: position..<text.endIndex), "no pattern after \(anchors)",
                                  file: file, line: line)
        let end = try XCTUnwrap(text.range(of: "\"", range: start.upperBound..<text.endIndex), file: file, line: line)
        let source = String(text[start.upperBound..<end.lowerBound])
        XCTAssertFalse(source.contains("\\"), "\(source) has a YAML escape: read it as YAML first", file: file, line: line)
        return try NSRegularExpression(pattern: source)
    }

    /// The integer after `key: ` in the schema or property on the line of the last of
    /// `anchors`, or in the lines below it that are indented deeper.
    private func keyword(_ key: String, of anchors: [String], file: StaticString = #filePath, line: UInt = #line) throws -> Int {
        let text = Self.document
        var position = try XCTUnwrap(location(after: anchors), "openapi/vhost-switch.yaml has no \(anchors)", file: file, line: line)
        if text[..<position].hasSuffix("\n") { position = text.index(before: position) }  // the anchor's own line
        let lineStart = text[..<position].lastIndex(of: "\n").map { text.index(after: $0) } ?? text.startIndex
        let indent = text[lineStart...].prefix { $0 == " " }.count
        var end = text[position...].firstIndex(of: "\n") ?? text.endIndex
        while end < text.endIndex, text[text.index(after: end)...].prefix(while: { $0 == " " }).count > indent {
            end = text[text.index(after: end)...].firstIndex(of: "\n") ?? text.endIndex
        }
        let block = text[lineStart..<end]
        let found = try XCTUnwrap(block.range(of: key + ": "), "no \(key) in \(block)", file: file, line: line)
        return try XCTUnwrap(Int(block[found.upperBound...].prefix { $0.isNumber }), file: file, line: line)
    }

    /// The whole of `value` matches (as in ECMA-262, OpenAPI's pattern dialect, where `$` is
    /// the end of the text, not also a newline just before it).
    private func matches(_ pattern: NSRegularExpression, _ value: String) -> Bool {
        let whole = NSRange(value.startIndex..., in: value)
        return pattern.firstMatch(in: value, range: whole)?.range == whole
    }

    /// For each sample, the schema (`schema`) and the server's own check (`server`) agree.
    private func assertAgree(_ samples: [String], schema: (String) -> Bool, server: (String) -> Bool,
                             file: StaticString = #filePath, line: UInt = #line) {
        for sample in samples {
            let (schemaAccepts, serverAccepts) = (schema(sample), server(sample))
            XCTAssertEqual(serverAccepts, schemaAccepts, "\(sample.debugDescription): server \(serverAccepts), schema \(schemaAccepts)",
                           file: file, line: line)
        }
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


    func testLogLevelsAreTheServers() {
        XCTAssertEqual(enumValues(after: "\n    LogLevel:\n"), Set(RuntimeLogLevel.names))
    }

    func testSocketAndXDPModesAreTheServers() {
        XCTAssertEqual(enumValues(after: "\n    VhostUserPortCreate:\n", "\n            mode:"), Set(PortSpec.SocketMode.allCases.map(\.rawValue)))
        XCTAssertEqual(enumValues(after: "\n    AfXdpPortCreate:\n", "\n        mode:"), Set(XDPSocket.AttachMode.allCases.map(\.rawValue)))
    }

    /// The schema's socket path pattern and SocketDirectory.resolve accept the same relative
    /// paths (the absolute form depends on the configured directory: checked separately).
    func testSocketPathPatternAndServerAgree() throws {
        let socketPath = try pattern(after: "description: 'Relative to the socket directory")
        let directory = SocketDirectory(root: "/run/vs")
        let long = String(repeating: "a", count: 64)
        let samples = ["vm.sock", "pods/default_web-0/net1.sock", "a/b/c/d/e/f/g/h", "a/b/c/d/e/f/g/h/i", long, long + "b",
                       "_x", ".x", "-x", "x/.", "x/..", "../x", "x//y", "x/", "x y", "x:y", "é", "a.b-c_d", "x\u{1}",
                       "0/1/2.sock", "UPPER/lower.SOCK", "vm.sock\n"]
        assertAgree(samples, schema: { matches(socketPath, $0) }, server: { (try? directory.resolve($0)) != nil })
        // The absolute form: the socket directory, then a relative path the pattern accepts.
        XCTAssertEqual(try directory.resolve("/run/vs/pods/net1.sock"), "/run/vs/pods/net1.sock")
        XCTAssertTrue(matches(socketPath, "/run/vs/pods/net1.sock"))
        XCTAssertThrowsError(try directory.resolve("/run/other/net1.sock"))
        XCTAssertThrowsError(try directory.resolve("/run/vs/pods/.hidden"))
    }

    /// `FeatureName` (disable) lists every name the code has and `SupportedFeatureName`
    /// (enable) those of the supported bits, compared both ways; their bit number forms
    /// ("bit_NN", "NN") agree with the server for every bit, and so do malformed ones. The
    /// server also takes any case (documented): the schema is asked for the lowercase spelling.
    func testFeatureNamesAndBitNumbersAgreeWithTheServer() throws {
        let names = enumValues(after: "\n    FeatureName:\n")
        XCTAssertEqual(names, Set(VirtioNetFeature.allCases.map(\.name)))
        let supportedNames = enumValues(after: "\n    SupportedFeatureName:\n")
        XCTAssertEqual(supportedNames, Set(FeatureNames.names(of: FeatureOffer.supported)))
        let bitNumber = try pattern(after: "\n    FeatureName:\n")
        let supportedBitNumber = try pattern(after: "\n    SupportedFeatureName:\n")

        var samples = Array(names) + ["", "nonsense", "bit_", "bit", "bit_1a", "bit_-1", "-1", "+1", " 1", "1 ", "bit-1", "0x1",
                                      "bit_csum", "007", "bit_007", "100", "\u{FF11}", "mrg_rxbuf\n", "mrg-rxbuf"]
        for bit in 0..<100 {
            samples += ["\(bit)", "bit_\(bit)"]
            if bit < 10 { samples += ["0\(bit)", "bit_0\(bit)"] }
        }
        samples += samples.map { $0.uppercased() } + ["Mrg_RxBuf", "Bit_05"]
        assertAgree(samples, schema: { names.contains($0.lowercased()) || matches(bitNumber, $0.lowercased()) },
                    server: { (try? FeatureOffer.resolve(FeatureOffer.supported, disable: [$0])) != nil })
        assertAgree(samples, schema: { supportedNames.contains($0.lowercased()) || matches(supportedBitNumber, $0.lowercased()) },
                    server: { (try? FeatureOffer.resolve(0, enable: [$0])) != nil })
    }

    /// `InterfaceName` and the decoder of both kernel port types (the kernel's dev_valid_name,
    /// in printable ASCII).
    func testInterfaceNamePatternAndServerAgree() throws {
        let interfaceName = try pattern(after: "\n    InterfaceName:\n")
        let samples = ["eth0", "lo", "a", "_", "-", "..a", ".a", "a.", "...", ".", "..", "", String(repeating: "x", count: 15),
                       String(repeating: "x", count: 16), "veth-pod_1.100", "a/b", "a:b", "a b", "a\tb", "a\nb", "eth0\n", "a\u{7F}",
                       "a\u{1}", "é", "eth\u{A0}", "a@b", "!#$%&'()*+,", ";<=>?[]^`{|}~", "a\"b", "a\\b"]
        for type in ["af-packet", "af-xdp"] {
            assertAgree(samples, schema: { matches(interfaceName, $0) },
                        server: { (try? PortSpecDecoder.decode(["name": "p", "type": .string(type), "interface": .string($0)])) != nil })
        }
    }

    /// `PortName` (pattern and length) and PortSpec.validateName.
    func testPortNamePatternAndServerAgree() throws {
        let schema = ["\n  schemas:\n", "\n    PortName:\n"]  // not the path parameter of the same name
        let portName = try pattern(after: schema[0], schema[1])
        let length = try keyword("minLength", of: schema)...keyword("maxLength", of: schema)
        XCTAssertEqual(length, 1...PortSpec.maxNameLength)
        let samples = ["vm1", "a", "_", "0", "A.b-c_d", ".x", "-x", "x.", "x-", "", "x y", "x/y", "x:y", "é", "x\n",
                       String(repeating: "p", count: 64), String(repeating: "p", count: 65)]
        assertAgree(samples, schema: { matches(portName, $0) && length.contains($0.count) },
                    server: { PortSpec.validateName($0) == nil })
    }

    /// `MacAddress` (a vhost-user port's `mac`, DELETE /v1/fdb/{mac}) and `AllowedMACs`
    /// (unicast only) against the decoders and MacAddress.parse.
    func testMACPatternsAndServerAgree() throws {
        let mac = try pattern(after: "\n    MacAddress:\n")
        let unicast = try pattern(after: "\n    AllowedMACs:\n")
        let samples = ["02:00:00:00:00:01", "52:54:00:AB:cd:EF", "ff:ff:ff:ff:ff:ff", "01:00:5e:00:00:01", "03:00:00:00:00:00",
                       "0e:00:00:00:00:00", "0F:00:00:00:00:00", "+f:00:00:00:00:00", "-0:00:00:00:00:00", "02:00:00:00:00:+1",
                       "02:00:00:00:00", "02:00:00:00:00:01:02", "2:00:00:00:00:01", "002:00:00:00:00:01", "02-00-00-00-00-01",
                       "020000000001", "02:00:00:00:00:0g", "02:00:00:00:00:01\n", " 02:00:00:00:00:01", "02::00:00:00:00",
                       "\u{FF10}2:00:00:00:00:01", ""]
        assertAgree(samples, schema: { matches(mac, $0) }, server: { MacAddress.parse($0) != nil })
        assertAgree(samples, schema: { matches(mac, $0) },
                    server: { (try? PortSpecDecoder.decode(["name": "p", "type": "vhost-user", "socket": ["path": "p.sock"], "mac": .string($0)])) != nil })
        assertAgree(samples, schema: { matches(unicast, $0) },
                    server: { (try? PortPolicyDecoder.decode(["allowed_macs": [.string($0)]])) != nil })
    }

    /// A socket's `permissions` and `HexMask` (feature masks) against their parsers.
    func testPermissionsAndMaskPatternsAndServerAgree() throws {
        let permissions = try pattern(after: "\n            permissions:\n")
        assertAgree(["660", "0660", "0o660", "0o0660", "7", "0", "00", "0000", "777", "0777", "800", "0668", "07777", "1777", "7777",
                     "+660", "-0", "0x660", "0o", "", " 660", "660\n", "0O660", "0o+7"],
                    schema: { matches(permissions, $0) }, server: { PortSpecDecoder.parsePermissions($0) != nil })
        let mask = try pattern(after: "\n    HexMask:\n")
        assertAgree(["0x0", "0X1f", "1f", "0xffffffffffffffff", "ffffffffffffffff", "0x1ffffffffffffffff", "0x", "", "x1", "0x+1",
                     "+1", "-1", "0xg", "0x1\n", " 0x1", "\u{FF11}", "0x17c638028"],
                    schema: { matches(mask, $0) }, server: { PortSpecDecoder.parseMask($0) != nil })
    }

    /// `RxqAffinity`'s syntax (pattern, maxLength) and the policy decoder's, on samples whose
    /// queues are distinct and below PortSpec.maxQueuePairs (the rules the schema leaves to
    /// the server: a 400 either way).
    func testRxqAffinityPatternAndServerAgree() throws {
        let affinity = try pattern(after: "\n    RxqAffinity:\n")
        let maxLength = try keyword("maxLength", of: ["\n    RxqAffinity:\n"])
        XCTAssertEqual(maxLength, 8 * PortSpec.maxQueuePairs)
        let longest = (0..<PortSpec.maxQueuePairs).map { "\($0):9999" }.joined(separator: ",")
        let samples = ["", "0:1", "0:1,1:0", "127:63", "0001:0002", "0:10000", "0:1,", ",0:1", "0:1,,1:0", "0:", ":1", "0", "0:1:2",
                       "0 :1", "0:1 ", "+0:1", "0:-1", "0;1", "0:1\n", "\u{FF10}:1", longest, String(longest.dropLast(3))]
        assertAgree(samples, schema: { matches(affinity, $0) && $0.utf8.count <= maxLength },
                    server: { (try? PortPolicyDecoder.decode(["rxq_affinity": .string($0)])) != nil })
    }

    /// Every integer range of a create body is the code's, and the decoder takes its ends and
    /// refuses one beyond either.
    func testIntegerRangesAreTheServers() throws {
        let vhostUser: JSON = ["name": "p", "type": "vhost-user", "socket": ["path": "p.sock"]]
        let afXdp: JSON = ["name": "p", "type": "af-xdp", "interface": "eth0"]
        let cases: [(anchors: [String], code: ClosedRange<Int>, body: JSON, key: String)] = [
            (["\n    VhostUserPortCreate:\n", "\n        queues:"], 1...PortSpec.maxQueuePairs, vhostUser, "queues"),
            (["\n    VhostUserPortCreate:\n", "\n        mtu:"], PortSpec.mtuRange, vhostUser, "mtu"),
            (["\n    AfXdpPortCreate:\n", "\n        queue:"], PortSpec.AfXdp.queueRange, afXdp, "queue"),
            (["\n    AfXdpPortCreate:\n", "\n        queues:"], PortSpec.AfXdp.queueCountRange, afXdp, "queues"),
            (["\n    VlanID:\n"], Int(PortPolicy.validVLANs.lowerBound)...Int(PortPolicy.validVLANs.upperBound), vhostUser, "vlan"),
            (["\n    PortVlan:\n"], Int(PortPolicy.validVLANs.lowerBound)...Int(PortPolicy.validVLANs.upperBound), vhostUser, "vlan"),
            (["\n    MaxMACs:\n"], 1...PortPolicy.maxMaxMACs, vhostUser, "max_macs"),
        ]
        for (anchors, code, body, key) in cases {
            let schema = try keyword("minimum", of: anchors)...keyword("maximum", of: anchors)
            XCTAssertEqual(schema, code, "\(anchors)")
            for value in [code.lowerBound - 1, code.lowerBound, code.upperBound, code.upperBound + 1] {
                guard case .object(var members) = body else { return XCTFail() }
                members[key] = .integer(Int64(value))
                XCTAssertEqual((try? PortSpecDecoder.decode(.object(members))) != nil, code.contains(value), "\(key) \(value)")
            }
        }
        XCTAssertEqual(try keyword("maxItems", of: ["\n    AllowedMACs:\n"]), PortPolicy.maxAllowedMACs)
    }
}
