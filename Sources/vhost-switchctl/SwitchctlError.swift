/// A command that reached no result, with the exit status that says why (usage errors are
/// ArgumentParser's `ValidationError`, status 64).
struct SwitchctlError: Error, CustomStringConvertible {
    enum Kind {
        /// The daemon answered with an error (4xx/5xx).
        case refused
        /// No connection, or no answer in time (EX_UNAVAILABLE).
        case unreachable
        /// The answer was not HTTP or not the JSON expected (EX_PROTOCOL).
        case unreadableAnswer

        var exitCode: Int32 {
            switch self {
            case .refused: return 1
            case .unreachable: return 69
            case .unreadableAnswer: return 76
            }
        }
    }

    var kind: Kind
    var message: String
    var description: String { message }

    init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }
}
