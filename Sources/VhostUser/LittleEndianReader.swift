/// Reads little-endian integers from a byte array with bounds checks and no unsafe code:
/// every field of a vhost-user payload is decoded through here.
public struct LittleEndianReader: Sendable {
    private let bytes: [UInt8]
    public private(set) var offset: Int

    public init(_ bytes: [UInt8], offset: Int = 0) {
        self.bytes = bytes
        self.offset = offset
    }

    public var remaining: Int { bytes.count - offset }

    public mutating func u64() -> UInt64? { read(8) }
    public mutating func u32() -> UInt32? { read(4).map { UInt32(truncatingIfNeeded: $0) } }
    public mutating func u16() -> UInt16? { read(2).map { UInt16(truncatingIfNeeded: $0) } }

    public mutating func bytes(_ count: Int) -> [UInt8]? {
        guard count >= 0, remaining >= count else { return nil }
        defer { offset += count }
        return Array(bytes[offset..<offset + count])
    }

    private mutating func read(_ width: Int) -> UInt64? {
        guard remaining >= width else { return nil }
        var value: UInt64 = 0
        for i in 0..<width {
            value |= UInt64(bytes[offset + i]) << UInt64(8 * i)
        }
        offset += width
        return value
    }
}

/// The matching writer, for replies and for the test front-end.
public struct LittleEndianWriter: Sendable {
    public private(set) var bytes: [UInt8] = []

    public init() {}

    public mutating func u64(_ value: UInt64) { write(value, 8) }
    public mutating func u32(_ value: UInt32) { write(UInt64(value), 4) }
    public mutating func u16(_ value: UInt16) { write(UInt64(value), 2) }
    public mutating func append(_ other: [UInt8]) { bytes.append(contentsOf: other) }

    private mutating func write(_ value: UInt64, _ width: Int) {
        for i in 0..<width {
            bytes.append(UInt8(truncatingIfNeeded: value >> UInt64(8 * i)))
        }
    }
}
