#if canImport(Glibc)
import Glibc
#endif

/// Reads structured values off the fuzz input; past the end everything reads as zero, so
/// every input is a valid program (libFuzzer's mutations never make it unparseable).
public struct FuzzInput {
    public let bytes: [UInt8]
    public private(set) var offset = 0

    public init(_ bytes: [UInt8]) { self.bytes = bytes }

    public var isAtEnd: Bool { offset >= bytes.count }
    public var remaining: Int { max(0, bytes.count - offset) }

    public mutating func u8() -> UInt8 {
        guard offset < bytes.count else { offset += 1; return 0 }
        defer { offset += 1 }
        return bytes[offset]
    }

    public mutating func u16() -> UInt16 { UInt16(u8()) | UInt16(u8()) << 8 }
    public mutating func u32() -> UInt32 { UInt32(u16()) | UInt32(u16()) << 16 }
    public mutating func u64() -> UInt64 { UInt64(u32()) | UInt64(u32()) << 32 }

    /// Up to `count` bytes (fewer at the end of the input).
    public mutating func take(_ count: Int) -> [UInt8] {
        let start = min(offset, bytes.count)
        let end = min(bytes.count, start + max(0, count))
        offset = start + max(0, count)
        return Array(bytes[start..<end])
    }

    public mutating func rest() -> [UInt8] { take(remaining) }
}

public struct ByteWriter {
    public var bytes: [UInt8] = []
    public init() {}
    public mutating func u16(_ v: UInt16) { bytes += [UInt8(v & 0xff), UInt8(v >> 8)] }
    public mutating func u32(_ v: UInt32) { u16(UInt16(v & 0xffff)); u16(UInt16(v >> 16)) }
    public mutating func u64(_ v: UInt64) { u32(UInt32(v & 0xffff_ffff)); u32(UInt32(v >> 32)) }
    public mutating func append(_ b: [UInt8]) { bytes += b }
}

/// Aborts the fuzzer (a finding) with a message: used for invariants the sanitizers cannot see
/// (fd and mapping leaks).
public func fuzzInvariant(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String) {
    if !condition() {
        let text = "FUZZ INVARIANT FAILED: \(message())\n"
        text.utf8CString.withUnsafeBufferPointer { _ = write(2, $0.baseAddress, $0.count - 1) }
        abort()
    }
}

/// Mappings of memfds in this process (lines of /proc/self/maps naming "memfd:").
public func memfdMappingCount() -> Int {
    guard let file = fopen("/proc/self/maps", "r") else { return -1 }
    defer { fclose(file) }
    var count = 0
    var line = [CChar](repeating: 0, count: 4096)
    while fgets(&line, Int32(line.count), file) != nil {
        if strstr(line, "/memfd:") != nil { count += 1 }
    }
    return count
}

/// "fd -> target" for every open fd, for leak reports.
public func openDescriptorList() -> String {
    var lines: [String] = []
    guard let dir = opendir("/proc/self/fd") else { return "?" }
    defer { closedir(dir) }
    while let entry = readdir(dir) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
        if name == "." || name == ".." { continue }
        var target = [CChar](repeating: 0, count: 512)
        let n = readlink("/proc/self/fd/" + name, &target, 511)
        lines.append("\(name) -> \(n > 0 ? String(decoding: target.prefix(n).map { UInt8(bitPattern: $0) }, as: UTF8.self) : "?")")
    }
    return lines.joined(separator: ", ")
}
