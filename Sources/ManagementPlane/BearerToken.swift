import VhostSystem

/// The API's shared secret (`--api-token-file`). Compared in constant time so response
/// timing does not reveal how much of a guess was right.
public struct BearerToken: Sendable {
    private let secret: [UInt8]

    public struct LoadError: Error, CustomStringConvertible {
        public var description: String
    }

    public init(_ secret: String) throws(LoadError) {
        let bytes = Array(secret.utf8)
        guard bytes.count >= 16 else { throw LoadError(description: "the API token must be at least 16 characters") }
        guard bytes.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
            throw LoadError(description: "the API token must be printable ASCII without spaces")
        }
        self.secret = bytes
    }

    /// Reads the token from a file; surrounding whitespace (a trailing newline) is ignored.
    /// The file must be readable by its owner only (mode 0600 or 0400) and owned by root or
    /// by the daemon's user: a secret others can read or replace is no secret.
    public static func load(path: String) throws(LoadError) -> BearerToken {
        let file: (bytes: [UInt8], status: FileStatus)?
        do { file = try FileSystem.readFileAndStatus(path, maxBytes: 4096) } catch {
            throw LoadError(description: "cannot read the API token file \(path): \(error)")
        }
        guard let (bytes, status) = file else { throw LoadError(description: "the API token file \(path) does not exist") }
        if let problem = ownershipProblem(status, ownUserID: PeerIdentity.ownUserID) {
            throw LoadError(description: "the API token file \(path) \(problem)")
        }
        let text = String(decoding: bytes, as: UTF8.self)
        let trimmed = text.split(whereSeparator: { $0 == "\n" || $0 == "\r" || $0 == " " || $0 == "\t" })
        guard trimmed.count == 1 else { throw LoadError(description: "the API token file \(path) must hold one token") }
        return try BearerToken(String(trimmed[0]))
    }

    /// Why a token file with `status` must not be used; nil when it may.
    static func ownershipProblem(_ status: FileStatus, ownUserID: UInt32) -> String? {
        if status.permissions & 0o077 != 0 {
            let mode = String(status.permissions, radix: 8)
            return "has mode 0\(mode): group or others may read or change it; use mode 0600 or 0400 (chmod 0600)"
        }
        if status.ownerID != 0 && status.ownerID != ownUserID {
            return "is owned by uid \(status.ownerID), not by root or the daemon's user (uid \(ownUserID)); chown it"
        }
        return nil
    }

    /// True for "Bearer <token>" with exactly this token.
    public func matches(authorizationHeader header: String?) -> Bool {
        guard let header else { return false }
        let bytes = Array(header.utf8)
        let prefix = Array("bearer ".utf8)
        guard bytes.count > prefix.count,
              zip(bytes, prefix).allSatisfy({ ($0 | 0x20) == $1 || $0 == $1 }) else { return false }
        var given = bytes[prefix.count...]
        while given.first == 0x20 { given = given.dropFirst() }
        return Self.constantTimeEquals(Array(given), secret)
    }

    /// Time depends only on the lengths, never on where the bytes differ.
    static func constantTimeEquals(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        var difference = UInt8(truncatingIfNeeded: a.count ^ b.count)
        if a.count != b.count { difference |= 1 }
        let count = max(a.count, b.count)
        for i in 0..<count {
            let x = i < a.count ? a[i] : 0
            let y = i < b.count ? b[i] : 0
            difference |= x ^ y
        }
        return difference == 0
    }
}
