import ManagementClient

/// Rows under a header, each column as wide as its widest cell, two spaces apart; the last
/// column is not padded.
struct TextTable {
    var header: [String]
    var rows: [[String]] = []

    init(_ header: [String]) { self.header = header }

    mutating func add(_ row: [String]) { rows.append(row) }

    func rendered() -> String {
        let lines = [header] + rows
        var widths = [Int](repeating: 0, count: header.count)
        for line in lines {
            for (column, cell) in line.enumerated() where column < widths.count { widths[column] = max(widths[column], cell.count) }
        }
        var out = ""
        for line in lines {
            var text = ""
            for (column, cell) in line.enumerated() {
                if column > 0 { text += "  " }
                text += cell
                if column < line.count - 1 { text += String(repeating: " ", count: max(0, widths[column] - cell.count)) }
            }
            out += text + "\n"
        }
        return out
    }

    /// Key/value lines for one object: nested objects as dotted keys, lists comma-separated,
    /// so fields the CLI does not know yet (new API keys) show too.
    static func fields(_ value: JSONValue) -> String {
        if value.isNull { return "" }  // an answer without a body
        var table = TextTable(["FIELD", "VALUE"])
        for (key, cell) in flattened(value) { table.add([key, cell]) }
        return table.rendered()
    }

    static func flattened(_ value: JSONValue, prefix: String = "") -> [(String, String)] {
        guard let object = value.objectValue else { return [(prefix, Cell.text(value))] }
        var result: [(String, String)] = []
        for key in object.keys.sorted() {
            let member = object[key] ?? .null
            let path = prefix.isEmpty ? key : prefix + "." + key
            if member.objectValue.map({ !$0.keys.isEmpty }) == true {
                result += flattened(member, prefix: path)
            } else {
                result.append((path, Cell.text(member)))
            }
        }
        return result
    }
}

/// How a JSON value reads in a table cell.
enum Cell {
    static func text(_ value: JSONValue?) -> String {
        switch value {
        case nil, .null?: return "-"
        case .bool(let flag)?: return flag ? "yes" : "no"
        case .number(let literal)?: return literal
        case .string(let text)?: return text.isEmpty ? "\"\"" : text
        case .array(let items)?: return items.isEmpty ? "-" : items.map { text($0) }.joined(separator: ",")
        case .object(let object)?:
            return object.keys.isEmpty ? "-" : object.keys.sorted().map { "\($0)=\(text(object[$0]))" }.joined(separator: " ")
        }
    }

    /// A JSON number (or nothing) as an unsigned count, for sums.
    static func count(_ value: JSONValue?) -> UInt64 {
        guard case .number(let literal)? = value else { return 0 }
        return UInt64(literal) ?? 0
    }

    /// A fraction as a percentage with one decimal.
    static func percent(_ fraction: Double) -> String {
        let tenths = Int((fraction * 1000).rounded())
        return "\(tenths / 10).\(tenths % 10)%"
    }
}
