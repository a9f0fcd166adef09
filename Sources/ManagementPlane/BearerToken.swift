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
    public static func load(path: String) throws(LoadError) -> BearerToken {
        let bytes: [UInt8]?
        do { bytes = try FileSystem.readFile(path, maxBytes: 4096) } catch {
            throw LoadError(description: "cannot read the API token file \(path): \(error)")
        }
        guard let bytes else { throw LoadError(description: "the API token file \(path) does not exist") }
        let text = String(decoding: bytes, as: UTF8.self)
        let trimmed = text.split(whereSeparator: { $0 == "\n" || $0 == "\r" || $0 == " " || $0 == "\t" })
        guard trimmed.count == 1 else { throw LoadError(description: "the API token file \(path) must hold one token") }
        return try BearerToken(String(trimmed[0]))
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
