import ManagementClient

/// A CNI error result (spec 1.0.0, "Error"): printed on stdout as
/// {"cniVersion", "code", "msg", "details"} with a non-zero exit status.
struct CNIError: Error, CustomStringConvertible {
    /// Well-known codes from the specification; 100 and up are this plugin's own.
    enum Code: Int {
        case incompatibleVersion = 1
        case unsupportedField = 2
        case unknownContainer = 3
        case invalidEnvironment = 4
        case ioFailure = 5
        case decodingFailure = 6
        case invalidNetworkConfig = 7
        case tryAgainLater = 11
        /// STATUS (1.1): the plugin cannot serve ADD now.
        case pluginNotAvailable = 50
        /// The daemon refused the request (conflict, authorization, ...); details carry its error.
        case daemonRefused = 100
        /// CHECK found the port missing or different from the configuration.
        case checkFailed = 101
        /// The IPAM plugin could not be run or gave an unreadable answer.
        case ipamFailed = 102
    }

    var code: Int
    var message: String
    var details: String

    init(_ code: Code, _ message: String, details: String = "") {
        self.code = code.rawValue
        self.message = message
        self.details = details
    }

    /// An error passed through unchanged from a delegated (IPAM) plugin.
    init(rawCode: Int, message: String, details: String) {
        self.code = rawCode
        self.message = message
        self.details = details
    }

    var description: String { details.isEmpty ? "\(message) (code \(code))" : "\(message): \(details) (code \(code))" }

    func json(cniVersion: String) -> JSONValue {
        var object: JSONObject = ["cniVersion": .string(cniVersion), "code": .integer(code), "msg": .string(message)]
        if !details.isEmpty { object["details"] = .string(details) }
        return .object(object)
    }
}
