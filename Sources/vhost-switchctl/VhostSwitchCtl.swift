import ArgumentParser
import CNISystem

/// vhost-switchctl: an operator's view of a running vhost-switchd (like ovs-appctl or
/// vppctl), built only on its REST API.
@main
struct VhostSwitchCtl: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vhost-switchctl",
        abstract: "Look at and change a running vhost-switchd through its REST API.",
        discussion: """
            Every command takes --api (default \(APIOptions.defaultSocket)), --token-file and --json \
            (print the API's JSON instead of tables).
            Exit status: 0 done; \(SwitchctlError.Kind.refused.exitCode) the daemon refused the request (its error is printed); \
            64 usage; \(SwitchctlError.Kind.unreachable.exitCode) the daemon cannot be reached; \
            \(SwitchctlError.Kind.unreadableAnswer.exitCode) its answer could not be read.
            """,
        subcommands: [Ports.self, PortCommand.self, Features.self, Stats.self, FDB.self, Events.self, LogLevel.self])

    /// ArgumentParser's own handling for usage errors and help (exit 64 and 0); a failed call
    /// prints the reason and exits with its kind's status.
    static func main() {
        CurrentProcess.ignoreBrokenPipe()
        do {
            var command = try parseAsRoot(commandFirst(Array(CommandLine.arguments.dropFirst())))
            try command.run()
        } catch let failure as SwitchctlError {
            CurrentProcess.writeStandardError("vhost-switchctl: \(failure.message)\n")
            CurrentProcess.exit(failure.kind.exitCode)
        } catch {
            exit(withError: error)
        }
    }

    /// The shared options belong to each command; given before the command
    /// (`vhost-switchctl --api URL ports`) they are moved behind it, where ArgumentParser reads them.
    static func commandFirst(_ arguments: [String]) -> [String] {
        var leading: [String] = []
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            if argument == "--json" || argument.hasPrefix("--api=") || argument.hasPrefix("--token-file=") {
                leading.append(argument)
                index += 1
            } else if (argument == "--api" || argument == "--token-file") && index + 1 < arguments.count {
                leading += arguments[index...(index + 1)]
                index += 2
            } else {
                break
            }
        }
        return Array(arguments[index...]) + leading
    }
}
