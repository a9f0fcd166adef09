import ArgumentParser
import ManagementClient
import VhostSystem

/// The options every command takes: where the API is, its token, and the output mode.
struct APIOptions: ParsableArguments {
    static let defaultSocket = "/run/vhost-switch/api.sock"

    @Option(name: .long, help: ArgumentHelp("The daemon's API: a unix socket path, unix:///PATH or http://HOST:PORT.", valueName: "PATH|URL"))
    var api = APIOptions.defaultSocket

    @Option(name: .long, help: ArgumentHelp("File holding the API's bearer token (a TCP API started with --api-token-file).", valueName: "FILE"))
    var tokenFile: String?

    @Flag(name: .long, help: "Print the API's JSON instead of tables.")
    var json = false

    /// A path (absolute or relative) is the unix socket; otherwise a unix:// or http:// URL.
    static func endpoint(_ text: String) throws(ValidationError) -> APIEndpoint {
        guard text.contains("://") else {
            guard !text.isEmpty, text.utf8.count <= 107 else { throw ValidationError("--api: a unix socket path has 1 to 107 bytes") }
            return .unix(path: text)
        }
        do { return try APIEndpoint(parsing: text) } catch { throw ValidationError("--api \(text): \(error.description)") }
    }

    /// The token: the file's one line.
    static func token(fromFile path: String) throws(ValidationError) -> String {
        let contents: [UInt8]?
        do { contents = try FileSystem.readFile(path, maxBytes: 4096) } catch { throw ValidationError("--token-file: \(error)") }
        guard let contents else { throw ValidationError("--token-file \(path) does not exist") }
        let lines = String(decoding: contents, as: UTF8.self).trimmingSpaces().split(separator: "\n", omittingEmptySubsequences: false)
        guard lines.count == 1, let line = lines.first, !line.isEmpty else { throw ValidationError("--token-file \(path) must hold one token on one line") }
        return String(line)
    }

    func session() throws(ValidationError) -> APISession {
        let token = try tokenFile.map { path throws(ValidationError) in try Self.token(fromFile: path) }
        return APISession(client: APIClient(endpoint: try Self.endpoint(api), token: token, userAgent: "vhost-switchctl"), printsJSON: json)
    }
}

/// A command that talks to the API: each has the shared options.
protocol APICommand: ParsableCommand {
    var options: APIOptions { get }
}

extension Ports: APICommand {}
extension PortCommand.Show: APICommand {}
extension PortCommand.Add: APICommand {}
extension PortCommand.Delete: APICommand {}
extension PortCommand.Change: APICommand {}
extension Features: APICommand {}
extension Stats: APICommand {}
extension FDB: APICommand {}
extension Events: APICommand {}
extension LogLevel: APICommand {}
