import Glibc
import VhostSystem

/// The daemon under test as /proc shows it. Without a pid nothing can be read: the daemon
/// counts as alive and every number is -1 (unknown).
struct DaemonProbe {
    let pid: Int32?

    /// Alive and not a zombie (a dead child of someone who has not reaped it yet).
    var isAlive: Bool { pid.map { kill($0, 0) == 0 && !Self.isZombie($0) } ?? true }

    var openFDs: Int {
        guard let pid, let dir = opendir("/proc/\(pid)/fd") else { return -1 }
        defer { closedir(dir) }
        var count = 0
        while readdir(dir) != nil { count += 1 }
        return count - 2
    }

    var residentKiB: Int { statusKiB("VmRSS:") }

    /// Address space mapped (VmSize): what a region mapped with a huge file offset inflates.
    var virtualKiB: Int { statusKiB("VmSize:") }

    private func statusKiB(_ field: String) -> Int {
        guard let pid, let bytes = try? FileSystem.readFile("/proc/\(pid)/status", maxBytes: 65536) else { return -1 }
        for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n") where line.hasPrefix(field) {
            // "VmSize:\t  409764 kB", but "VmSize:\t68719888548 kB" once the number is wide.
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            return fields.count > 1 ? Int(fields[1]) ?? -1 : -1
        }
        return -1
    }

    private static func isZombie(_ pid: Int32) -> Bool {
        guard let bytes = try? FileSystem.readFile("/proc/\(pid)/stat", maxBytes: 4096) else { return true }
        let text = String(decoding: bytes, as: UTF8.self)
        guard let close = text.lastIndex(of: ")") else { return true }
        return text[text.index(close, offsetBy: 2)...].hasPrefix("Z")
    }
}
