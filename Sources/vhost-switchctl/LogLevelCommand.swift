import ArgumentParser
import ManagementClient

/// `log-level [LEVEL]`: the daemon's log level (GET /v1/log-level), or a new one for every
/// part of the daemon at once (PUT /v1/log-level).
struct LogLevel: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "log-level", abstract: "Show or change the daemon's log level (trace, debug, info, notice, warning, error, critical).")

    @Argument(help: "The new level; none: show the current one.") var level: String?
    @OptionGroup var options: APIOptions

    func run() throws {
        let session = try options.session()
        let table: (JSONValue) -> String = { "log level: \(Cell.text($0["level"]))\n" }
        if let level {
            try session.run("PUT", "/v1/log-level", body: .object(["level": .string(level)]), table: table)
        } else {
            try session.run("GET", "/v1/log-level", table: table)
        }
    }
}
