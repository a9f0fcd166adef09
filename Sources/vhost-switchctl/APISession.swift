import CNISystem
import ManagementClient
import VhostSystem

/// One command's calls to the API: failures become a `SwitchctlError` naming what went
/// wrong, and answers are printed as the API's JSON (--json) or as tables.
struct APISession {
    let client: APIClient
    let printsJSON: Bool

    /// The request's answer when it is a success (2xx).
    func call(_ method: String, _ path: String, body: JSONValue? = nil) throws(SwitchctlError) -> APIClient.Response {
        let response: APIClient.Response
        do { response = try client.request(method, path, body: body) } catch { throw Self.failure(error) }
        guard (200..<300).contains(response.status) else {
            throw SwitchctlError(.refused, "\(method) \(path): HTTP \(response.status): \(response.errorText)")
        }
        return response
    }

    /// Prints a successful answer: its body as it came (--json; "{}" when it has none) or
    /// `table` made from its JSON.
    func show(_ response: APIClient.Response, table: (JSONValue) -> String) throws(SwitchctlError) {
        if printsJSON {
            CurrentProcess.writeStandardOutput(response.body.isEmpty ? "{}\n" : String(decoding: response.body, as: UTF8.self) + "\n")
            return
        }
        CurrentProcess.writeStandardOutput(table(try Self.json(response)))
    }

    /// `call`, then `show`.
    func run(_ method: String, _ path: String, body: JSONValue? = nil, table: (JSONValue) -> String) throws(SwitchctlError) {
        try show(try call(method, path, body: body), table: table)
    }

    static func json(_ response: APIClient.Response) throws(SwitchctlError) -> JSONValue {
        if response.body.isEmpty { return .null }
        do { return try JSONValue.parse(response.body) } catch {
            throw SwitchctlError(.unreadableAnswer, "the daemon's answer is not JSON: \(error)")
        }
    }

    /// "cannot connect to /run/vhost-switch/api.sock: No such file or directory" and the like.
    static func failure(_ error: APIClient.Unreachable) -> SwitchctlError {
        let place: String
        switch error.endpoint {
        case .unix(let path): place = path
        case .tcp: place = error.endpoint.description
        }
        let reason = error.reason
        if reason.operation.hasPrefix("connect") { return SwitchctlError(.unreachable, "cannot connect to \(place): \(reason.reasonText)") }
        if reason.timedOut { return SwitchctlError(.unreachable, "no answer from \(place) in time (\(reason.operation))") }
        if reason.isProtocolError { return SwitchctlError(.unreadableAnswer, "\(place): \(reason.operation)") }
        return SwitchctlError(.unreachable, "talking to \(place): \(reason)")
    }

    /// A path segment or query value with everything but unreserved characters percent-encoded.
    static func escaped(_ text: String) -> String {
        var result = ""
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
                result.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                let hex = String(byte, radix: 16, uppercase: true)
                result += "%" + (hex.count == 1 ? "0" : "") + hex
            }
        }
        return result
    }

    static func portPath(_ name: String, _ rest: String = "") -> String { "/v1/ports/" + escaped(name) + rest }
}
