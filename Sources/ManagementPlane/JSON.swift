import CJansson

/// A JSON value decoded by jansson. Requests are parsed with JSON_REJECT_DUPLICATES and a
/// nesting cap; responses are rendered by jansson too, so one library owns the format.
public indirect enum JSON: Equatable, Sendable {
    case null
    case bool(Bool)
    case integer(Int64)
    case number(Double)
    case string(String)
    case array([JSON])
    case object([String: JSON])

    public struct ParseError: Error, Equatable, CustomStringConvertible {
        public var message: String
        public var description: String { message }
    }

    /// Deepest nesting a request may use; real requests need 3 or 4.
    public static let maxDepth = 16

    /// Parses `bytes` as one JSON document.
    public static func parse(_ bytes: [UInt8], maxDepth: Int = JSON.maxDepth) throws(ParseError) -> JSON {
        var error = json_error_t()
        let flags = Int(JSON_REJECT_DUPLICATES)
        let root = bytes.withUnsafeBufferPointer { buffer in
            buffer.withMemoryRebound(to: CChar.self) { json_loadb($0.baseAddress, $0.count, flags, &error) }
        }
        guard let root else {
            let text = withUnsafeBytes(of: &error.text) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
            throw ParseError(message: "invalid JSON at line \(error.line), column \(error.column): \(text)")
        }
        defer { json_decref(root) }
        return try convert(root, depth: 1, maxDepth: maxDepth)
    }

    public static func parse(_ text: String) throws(ParseError) -> JSON { try parse(Array(text.utf8)) }

    private static func convert(_ value: UnsafeMutablePointer<json_t>, depth: Int, maxDepth: Int) throws(ParseError) -> JSON {
        guard depth <= maxDepth else { throw ParseError(message: "JSON nested deeper than \(maxDepth) levels") }
        switch value.pointee.type {
        case JSON_NULL: return .null
        case JSON_TRUE: return .bool(true)
        case JSON_FALSE: return .bool(false)
        case JSON_INTEGER: return .integer(Int64(json_integer_value(value)))
        case JSON_REAL: return .number(json_real_value(value))
        case JSON_STRING:
            let length = json_string_length(value)
            let pointer = json_string_value(value)
            let bytes = UnsafeRawBufferPointer(start: pointer, count: length)
            return .string(String(decoding: bytes, as: UTF8.self))
        case JSON_ARRAY:
            var items: [JSON] = []
            for i in 0..<json_array_size(value) {
                items.append(try convert(json_array_get(value, i), depth: depth + 1, maxDepth: maxDepth))
            }
            return .array(items)
        case JSON_OBJECT:
            var members: [String: JSON] = [:]
            var iterator = json_object_iter(value)
            while let current = iterator {
                let key = String(cString: json_object_iter_key(current))
                members[key] = try convert(json_object_iter_value(current), depth: depth + 1, maxDepth: maxDepth)
                iterator = json_object_iter_next(value, current)
            }
            return .object(members)
        default:
            throw ParseError(message: "unsupported JSON value")
        }
    }

    /// Renders compactly with sorted keys (stable output for tests and diffs).
    public func rendered(pretty: Bool = false) -> String {
        let root = makeJansson()
        defer { json_decref(root) }
        let flags = pretty ? (Int(JSON_SORT_KEYS) | 2) : (Int(JSON_SORT_KEYS) | Int(JSON_COMPACT))
        guard let text = json_dumps(root, flags) else { return "null" }
        defer { free(text) }
        return String(cString: text)
    }

    private func makeJansson() -> UnsafeMutablePointer<json_t> {
        switch self {
        case .null: return json_null()
        case .bool(let value): return value ? json_true() : json_false()
        case .integer(let value): return json_integer(json_int_t(value))
        case .number(let value): return value.isFinite ? json_real(value) : json_null()
        case .string(let value):
            return value.utf8CString.withUnsafeBufferPointer { json_stringn($0.baseAddress, $0.count - 1) } ?? json_null()
        case .array(let items):
            let array = json_array()!
            for item in items { json_array_append_new(array, item.makeJansson()) }
            return array
        case .object(let members):
            let object = json_object()!
            for (key, item) in members { json_object_setn_new(object, key, key.utf8.count, item.makeJansson()) }
            return object
        }
    }
}

extension JSON {
    public subscript(key: String) -> JSON? {
        if case .object(let members) = self { return members[key] }
        return nil
    }

    public var stringValue: String? { if case .string(let s) = self { return s }; return nil }
    public var integerValue: Int64? { if case .integer(let i) = self { return i }; return nil }
    public var boolValue: Bool? { if case .bool(let b) = self { return b }; return nil }
    public var arrayValue: [JSON]? { if case .array(let a) = self { return a }; return nil }
    public var objectValue: [String: JSON]? { if case .object(let o) = self { return o }; return nil }
}

extension JSON: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByBooleanLiteral,
                ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral, ExpressibleByNilLiteral {
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int64) { self = .integer(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(arrayLiteral elements: JSON...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, JSON)...) {
        self = .object(Dictionary(elements, uniquingKeysWith: { _, last in last }))
    }
    public init(nilLiteral: ()) { self = .null }
}
