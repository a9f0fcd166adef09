import Foundation
import Glibc

/// A loopback TCP port for a daemon under test to listen on: below the kernel's ephemeral
/// range (32768 and up by default, where curl's, testpmd's and every other outgoing
/// connection take their local ports) and free when chosen (a bind to it succeeds). A port
/// picked at random from 20000-60000 was once taken by then (CI: "bind(127.0.0.1:50518):
/// Address already in use").
public enum UnusedTCPPort {
    public static func pick() -> Int {
        let ephemeralStart = ephemeralRangeStart()
        for _ in 0..<200 {
            let port = Int.random(in: 20000..<max(20001, ephemeralStart))
            if canBind(port) { return port }
        }
        return Int.random(in: 20000..<max(20001, ephemeralStart))
    }

    private static func ephemeralRangeStart() -> Int {
        let range = (try? String(contentsOfFile: "/proc/sys/net/ipv4/ip_local_port_range", encoding: .utf8)) ?? ""
        return range.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }).first.flatMap { Int($0) } ?? 32768
    }

    private static func canBind(_ port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        // Unsafe: sockaddr_in viewed as the sockaddr bind(2) takes, for its own size.
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
    }
}
