import XCTest
@testable import ManagementPlane

final class JSONTests: XCTestCase {
    func testParsesAndRendersRoundTrip() throws {
        let value = try JSON.parse(#"{"a": [1, 2.5, "x", true, null], "b": {"c": -7}}"#)
        XCTAssertEqual(value["a"], [1, .number(2.5), "x", true, nil])
        XCTAssertEqual(value["b"]?["c"], .integer(-7))
        XCTAssertEqual(try JSON.parse(value.rendered()), value)
        XCTAssertEqual(JSON.object(["z": 1, "a": "q"]).rendered(), #"{"a":"q","z":1}"#)
    }

    func testDuplicateKeysAreRejected() {
        XCTAssertThrowsError(try JSON.parse(#"{"a": 1, "a": 2}"#)) { error in
            XCTAssertTrue("\(error)".contains("duplicate"), "\(error)")
        }
    }

    func testDeepNestingIsRejected() {
        let deep = String(repeating: "[", count: 40) + String(repeating: "]", count: 40)
        XCTAssertThrowsError(try JSON.parse(deep)) { error in
            XCTAssertTrue("\(error)".contains("nested deeper"), "\(error)")
        }
        XCTAssertNoThrow(try JSON.parse(String(repeating: "[", count: 10) + String(repeating: "]", count: 10)))
    }

    func testMalformedJSONSaysWhere() {
        XCTAssertThrowsError(try JSON.parse(#"{"a": }"#)) { error in
            XCTAssertTrue("\(error)".contains("line 1"), "\(error)")
        }
        XCTAssertThrowsError(try JSON.parse([0xFF, 0xFE]))
        XCTAssertThrowsError(try JSON.parse(""))
    }

    func testStringsWithUnicodeSurvive() throws {
        let value = JSON.string("é\"\\\u{1F600}")
        XCTAssertEqual(try JSON.parse(JSON.array([value]).rendered()), [value])
    }
}

/// RFC 7396 section 2 and its appendix A examples.
final class JSONMergePatchTests: XCTestCase {
    func testRFC7396Examples() throws {
        let cases: [(String, String, String)] = [
            (#"{"a":"b"}"#, #"{"a":"c"}"#, #"{"a":"c"}"#),
            (#"{"a":"b"}"#, #"{"b":"c"}"#, #"{"a":"b","b":"c"}"#),
            (#"{"a":"b"}"#, #"{"a":null}"#, #"{}"#),
            (#"{"a":"b","b":"c"}"#, #"{"a":null}"#, #"{"b":"c"}"#),
            (#"{"a":["b"]}"#, #"{"a":"c"}"#, #"{"a":"c"}"#),
            (#"{"a":"c"}"#, #"{"a":["b"]}"#, #"{"a":["b"]}"#),
            (#"{"a":{"b":"c"}}"#, #"{"a":{"b":"d","c":null}}"#, #"{"a":{"b":"d"}}"#),
            (#"{"a":[{"b":"c"}]}"#, #"{"a":[1]}"#, #"{"a":[1]}"#),
            (#"["a","b"]"#, #"["c","d"]"#, #"["c","d"]"#),
            (#"{"a":"b"}"#, #"["c"]"#, #"["c"]"#),
            (#"{"e":null}"#, #"{"a":1}"#, #"{"a":1,"e":null}"#),
            (#"[1,2]"#, #"{"a":"b","c":null}"#, #"{"a":"b"}"#),
            (#"{}"#, #"{"a":{"bb":{"ccc":null}}}"#, #"{"a":{"bb":{}}}"#),
        ]
        for (target, patch, result) in cases {
            let merged = JSONMergePatch.apply(try JSON.parse(patch), to: try JSON.parse(target))
            XCTAssertEqual(merged, try JSON.parse(result), "\(target) + \(patch)")
        }
        // Scalar patches (jansson parses only objects and arrays at the top).
        XCTAssertEqual(JSONMergePatch.apply(.null, to: ["a": "foo"]), .null)
        XCTAssertEqual(JSONMergePatch.apply("bar", to: ["a": "foo"]), "bar")
    }
}
