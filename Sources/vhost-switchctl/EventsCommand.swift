import ArgumentParser
import CNISystem
import ManagementClient

/// `events [--follow]`: the daemon's recent events (GET /v1/events as JSON); with --follow
/// they and every new one as it happens (the server-sent event stream), until interrupted.
struct Events: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Recent device, port and migration events (GET /v1/events); --follow keeps printing new ones.")

    @Flag(help: "Keep the stream open and print each new event (one JSON object per line with --json).") var follow = false
    @Option(help: "Only this port's events.") var port: String?
    @Option(help: ArgumentHelp("Only these types, comma-separated (port.created, device.*, migration, ...).", valueName: "TYPES"))
    var type: String?
    @OptionGroup var options: APIOptions

    var path: String {
        var query: [String] = []
        if follow { query.append("since=0") }
        if let port { query.append("port=" + APISession.escaped(port)) }
        if let type { query.append("type=" + APISession.escaped(type)) }
        return "/v1/events" + (query.isEmpty ? "" : "?" + query.joined(separator: "&"))
    }

    func run() throws {
        let session = try options.session()
        guard follow else {
            try session.run("GET", path) { events in
                EventLine.header + (events.arrayValue ?? []).map(EventLine.text).joined()
            }
            return
        }
        if !options.json { CurrentProcess.writeStandardOutput(EventLine.header) }
        var reader = ServerSentEventReader()
        let response: APIClient.Response
        do {
            response = try session.client.stream(path, accept: "text/event-stream") { bytes in
                for data in reader.feed(bytes) {
                    if options.json {
                        CurrentProcess.writeStandardOutput(data + "\n")
                    } else if let event = try? JSONValue.parse(data) {
                        CurrentProcess.writeStandardOutput(EventLine.text(event))
                    }
                }
                return true
            }
        } catch {
            throw APISession.failure(error)
        }
        guard response.status == 200 else {
            throw SwitchctlError(.refused, "GET \(path): HTTP \(response.status): \(response.errorText)")
        }
        throw SwitchctlError(.unreachable, "the daemon closed the event stream")
    }
}

/// One event per line under fixed-width columns, so a followed stream lines up too.
enum EventLine {
    static let header = pad("ID", 7) + pad("TIME", 26) + pad("TYPE", 24) + pad("PORT", 18) + "DATA\n"

    static func text(_ event: JSONValue) -> String {
        let data = event["data"].map { $0.objectValue?.keys.isEmpty == true ? "" : Cell.text($0) } ?? ""
        let line = pad(Cell.text(event["id"]), 7) + pad(Cell.text(event["time"]), 26) + pad(Cell.text(event["type"]), 24)
            + (data.isEmpty ? Cell.text(event["port"]) : pad(Cell.text(event["port"]), 18) + data)
        return line + "\n"
    }

    private static func pad(_ text: String, _ width: Int) -> String {
        text + String(repeating: " ", count: max(1, width - text.count))
    }
}

/// Splits a text/event-stream into events and returns each event's data (its "data:" lines
/// joined); comments, ids, event names and retry hints are dropped.
struct ServerSentEventReader {
    private var pending: [UInt8] = []

    mutating func feed(_ bytes: [UInt8]) -> [String] {
        pending.append(contentsOf: bytes)
        var result: [String] = []
        while let end = Self.blankLine(in: pending) {
            let block = String(decoding: pending[..<end.start], as: UTF8.self)
            pending.removeFirst(end.next)
            // isNewline: "\r\n" is one Character in Swift.
            let data = block.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline)
                .filter { $0.hasPrefix("data:") }
                .map { line -> String in let value = line.dropFirst(5); return String(value.hasPrefix(" ") ? value.dropFirst() : value) }
            if !data.isEmpty { result.append(data.joined(separator: "\n")) }
        }
        return result
    }

    /// Where the first event ends ("\n\n" or "\r\n\r\n") and the next begins.
    private static func blankLine(in bytes: [UInt8]) -> (start: Int, next: Int)? {
        var index = 0
        while index + 1 < bytes.count {
            if bytes[index] == 10 && bytes[index + 1] == 10 { return (index, index + 2) }
            if index + 3 < bytes.count, bytes[index] == 13, bytes[index + 1] == 10, bytes[index + 2] == 13, bytes[index + 3] == 10 {
                return (index, index + 4)
            }
            index += 1
        }
        return nil
    }
}
