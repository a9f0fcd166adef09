import Synchronization

/// The bearer token TCP clients must send: read from `--api-token-file` at start and again
/// on SIGHUP, so a token can be rotated without a restart. A reload that fails keeps the
/// token in use.
public final class APITokenSource: Sendable {
    /// The file it is read from; nil for a fixed token.
    public let path: String?
    private let current: Mutex<BearerToken>

    public init(path: String) throws(BearerToken.LoadError) {
        self.path = path
        current = Mutex(try BearerToken.load(path: path))
    }

    public init(token: BearerToken) {
        path = nil
        current = Mutex(token)
    }

    /// Reads the file again and uses its token from the next request on.
    public func reload() throws(BearerToken.LoadError) {
        guard let path else { return }
        let token = try BearerToken.load(path: path)
        current.withLock { $0 = token }
    }

    public func matches(authorizationHeader header: String?) -> Bool {
        current.withLock { $0 }.matches(authorizationHeader: header)
    }
}
