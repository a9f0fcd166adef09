import ArgumentParser
import ManagementClient

/// `fdb [--flush]`: the MAC table (GET /v1/fdb), or emptying it (DELETE /v1/fdb).
struct FDB: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fdb", abstract: "The learned MAC addresses (GET /v1/fdb); --flush forgets them all (DELETE /v1/fdb).")

    @Flag(help: "Remove every learned entry.") var flush = false
    @OptionGroup var options: APIOptions

    func run() throws {
        let session = try options.session()
        if flush {
            try session.run("DELETE", "/v1/fdb") { "removed \(Cell.text($0["removed"])) entries\n" }
        } else {
            try session.run("GET", "/v1/fdb", table: Self.table)
        }
    }

    static func table(_ fdb: JSONValue) -> String {
        let entries = fdb["entries"]?.arrayValue ?? []
        var table = TextTable(["MAC", "PORT", "PORT ID", "AGE s"])
        for entry in entries {
            table.add([Cell.text(entry["mac"]), Cell.text(entry["port"]), Cell.text(entry["port_id"]), Cell.text(entry["age_seconds"])])
        }
        return table.rendered()
            + "\(entries.count) entries of \(Cell.text(fdb["capacity"])); idle entries age out after \(Cell.text(fdb["aging_seconds"])) s\n"
    }
}
