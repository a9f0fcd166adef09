import CNISystem
import ManagementClient
import VhostSystem

/// Delegation to an IPAM plugin (spec 1.0.0, "Delegated plugins"): the binary named by
/// ipam.type, found in CNI_PATH, run with our environment and our stdin.
enum IPAM {
    static let timeoutMilliseconds = 30_000

    /// Runs the IPAM plugin for `command`. Returns its parsed stdout (the result for ADD), or
    /// throws its own CNI error unchanged when it fails.
    @discardableResult
    static func run(type: String, command: CNIEnvironment.Command, environment: CNIEnvironment, config: NetworkConfig) throws(CNIError) -> JSONObject? {
        guard let binary = environment.path.map({ $0 + "/" + type }).first(where: FileSystem.isExecutableFile) else {
            throw CNIError(.ipamFailed, "failed to find IPAM plugin \(type)",
                           details: "CNI_PATH=\(environment.path.joined(separator: ":"))")
        }
        var entries = environment.entries.filter { !$0.hasPrefix("CNI_COMMAND=") }
        entries.append("CNI_COMMAND=" + command.rawValue)
        let outcome: ChildProcess.Outcome
        do {
            outcome = try ChildProcess.run(path: binary, environment: entries, input: config.raw,
                                           deadline: StreamClient.deadline(afterMilliseconds: timeoutMilliseconds))
        } catch {
            throw CNIError(.ipamFailed, "IPAM plugin \(type) \(command.rawValue) failed", details: error.description)
        }
        let output = outcome.output.isEmpty ? nil : try? JSONValue.parse(outcome.output)
        guard outcome.status == 0 else {
            if let error = output?.objectValue, let code = error["code"]?.intValue {
                throw CNIError(rawCode: code, message: error["msg"]?.stringValue ?? "IPAM plugin \(type) failed",
                               details: error["details"]?.stringValue ?? "")
            }
            let stderr = String(decoding: outcome.errorOutput.suffix(1024), as: UTF8.self)
            throw CNIError(.ipamFailed, "IPAM plugin \(type) \(command.rawValue) exited with status \(outcome.status)", details: stderr)
        }
        if command == .add {
            guard let result = output?.objectValue else {
                throw CNIError(.ipamFailed, "IPAM plugin \(type) returned no result", details: String(decoding: outcome.output.prefix(1024), as: UTF8.self))
            }
            return result
        }
        return nil
    }
}
