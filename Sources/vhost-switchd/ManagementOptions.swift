import ArgumentParser
import Logging
import ManagementPlane
import VhostSystem

/// The management plane's hardening flags: who may use TCP, which Host names it answers,
/// the read-only metrics listener, event-stream limits and the readiness threshold.
struct ManagementOptions: ParsableArguments {
    @Flag(name: .long, help: "Allow --listen without --api-token-file on a loopback address (logged as a warning): every local process can then manage the switch.")
    var insecureTcp = false

    @Option(name: .long, help: "A host name the TCP API answers to in the Host header, besides its address (and localhost on loopback); repeatable.")
    var apiHost: [String] = []

    @Option(name: .long, help: "Serve GET /metrics, /v1/health (liveness) and /v1/ready (readiness) read-only, without a token, on this address, e.g. 127.0.0.1:9871 or 0.0.0.0:9871.")
    var metricsListen: String?

    @Option(name: .long, help: "Event streams (GET /v1/events) open at once, in all.")
    var maxEventStreams = 32

    @Option(name: .long, help: "Event streams open at once per client (per user id on the unix socket, per IP address on TCP; all loopback addresses are one client).")
    var maxEventStreamsPerClient = 8

    @Option(name: .long, help: "Seconds an event stream's writes may stay blocked (its reader stopped reading) before it is closed.")
    var eventStreamWriteTimeout = 10

    @Option(name: .long, help: "Seconds without progress of the control loop or a poll thread after which /v1/ready answers 503.")
    var readinessStallSeconds = ReadinessMonitor.defaultStallSeconds

    func validate() throws {
        if let metricsListen, TCPSocket.Address(parsing: metricsListen) == nil {
            throw ValidationError("--metrics-listen must be an IP address and port such as 127.0.0.1:9871 or [::1]:9871")
        }
        guard (1...4096).contains(maxEventStreams) else { throw ValidationError("--max-event-streams must be 1...4096") }
        guard (1...maxEventStreams).contains(maxEventStreamsPerClient) else {
            throw ValidationError("--max-event-streams-per-client must be 1...--max-event-streams")
        }
        guard (1...3600).contains(eventStreamWriteTimeout) else { throw ValidationError("--event-stream-write-timeout must be 1...3600") }
        guard (1...3600).contains(readinessStallSeconds) else { throw ValidationError("--readiness-stall-seconds must be 1...3600") }
        if let bad = apiHost.first(where: { $0.isEmpty || $0.contains(where: { !($0.isLetter || $0.isNumber || $0 == "." || $0 == "-") }) }) {
            throw ValidationError("--api-host \(bad) is not a host name")
        }
    }

    var eventLimits: EventHub.Limits { EventHub.Limits(total: maxEventStreams, perClient: maxEventStreamsPerClient) }

    var readiness: ReadinessMonitor { ReadinessMonitor(stallSeconds: readinessStallSeconds) }

    func apply(to configuration: inout ManagementServer.Configuration) {
        configuration.allowInsecureTCP = insecureTcp
        configuration.hostNames = apiHost
        configuration.metricsListen = metricsListen.flatMap(TCPSocket.Address.init(parsing:))
        configuration.eventStreamWriteTimeoutSeconds = eventStreamWriteTimeout
    }
}
