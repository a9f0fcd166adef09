import Logging

/// /v1/log-level: the daemon's log level, read and changed at run time.
extension ManagementAPI {
    func getLogLevel() throws(APIError) -> HTTPResponse {
        .json(["level": .string(logLevel.level.rawValue)])
    }

    func putLogLevel(_ request: HTTPRequest) throws(APIError) -> HTTPResponse {
        guard let body = try request.jsonBody().objectValue else {
            throw APIError(.badRequest, .invalidBody, "the body must be an object {\"level\": \"debug\"}")
        }
        try Self.rejectUnknown(body, allowed: ["level"])
        guard let name = body["level"]?.stringValue, let level = Logger.Level(rawValue: name) else {
            throw APIError(.badRequest, .invalidLogLevel, "level must be one of \(RuntimeLogLevel.names.joined(separator: ", "))")
        }
        let previous = logLevel.level
        // The notice goes out under the old level when that shows notices, else under the new one.
        if previous <= .notice { logChange(from: previous, to: level) }
        logLevel.level = level
        if previous > .notice { logChange(from: previous, to: level) }
        return .json(["level": .string(level.rawValue)])
    }

    private func logChange(from previous: Logger.Level, to level: Logger.Level) {
        logger.notice("log level changed", metadata: ["from": "\(previous)", "to": "\(level)"])
    }
}
