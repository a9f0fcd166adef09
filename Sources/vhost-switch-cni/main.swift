// vhost-switch-cni: a CNI plugin (spec 1.0.0, plus GC and STATUS from 1.1.0) that gives a pod
// a vhost-user interface on vhost-switchd through the daemon's REST API. The runtime runs it
// with CNI_* in the environment and the network configuration on stdin; the result or a CNI
// error goes to stdout, and the exit status is 0 only on success.
import CNISystem
import ManagementClient
import VhostSystem

CurrentProcess.ignoreBrokenPipe()

/// The version errors are reported in: the configuration's when it names a supported one.
func reportingVersion(_ stdin: [UInt8]) -> String {
    if let version = (try? JSONValue.parse(stdin))?["cniVersion"]?.stringValue, CNIVersion.supported.contains(version) { return version }
    return CNIVersion.latest
}

func fail(_ error: CNIError, stdin: [UInt8]) -> Never {
    CurrentProcess.writeStandardOutput(error.json(cniVersion: reportingVersion(stdin)).rendered() + "\n")
    CurrentProcess.writeStandardError("vhost-switch-cni: \(error)\n")
    CurrentProcess.exit(1)
}

func run(stdin: [UInt8]) throws(CNIError) {
    let environment = try CNIEnvironment(environment: CurrentProcess.environment(), entries: CurrentProcess.environmentEntries())
    if environment.command == .version {
        let version = reportingVersion(stdin)
        let answer: JSONObject = ["cniVersion": .string(version), "supportedVersions": .array(CNIVersion.supported.map { .string($0) })]
        CurrentProcess.writeStandardOutput(JSONValue.object(answer).rendered() + "\n")
        return
    }
    let settings = try InstallSettings.load(environment: CurrentProcess.environment())
    let config = try NetworkConfig(bytes: stdin, command: environment.command, settings: settings)
    let client = APIClient(endpoint: .unix(path: config.api.path), token: try APIClient.readToken(config.apiTokenFile))
    let plugin = Plugin(environment: environment, config: config, settings: settings, client: client)
    switch environment.command {
    case .add: CurrentProcess.writeStandardOutput(try plugin.add().rendered() + "\n")
    case .del: try plugin.del()
    case .check: try plugin.check()
    case .gc: try plugin.gc()
    case .status: try plugin.status()
    case .version: break
    }
}

let stdin: [UInt8]
do { stdin = try CurrentProcess.readStandardInput(maxBytes: 1 << 20) } catch {
    fail(CNIError(.ioFailure, "cannot read the network configuration from stdin", details: error.description), stdin: [])
}
do { try run(stdin: stdin) } catch { fail(error, stdin: stdin) }
CurrentProcess.exit(0)
