import Foundation

/// The summary lines of an iperf3 client's text output (`iperf3 -c HOST -f m`):
///
///     [  5]   0.00-10.08  sec   269 MBytes   224 Mbits/sec  135             sender
///     [  5]   0.00-10.08  sec   269 MBytes   224 Mbits/sec                  receiver
///
/// Transfer units are binary (KBytes = 1024 bytes), rates decimal (Mbits = 10^6 bits), as
/// iperf3 prints them.
public struct Iperf3Report: Sendable, CustomStringConvertible {
    public struct Summary: Sendable, CustomStringConvertible {
        public var start: Double
        public var end: Double
        public var bytes: Double
        public var bitsPerSecond: Double
        /// TCP retransmissions (sender line only).
        public var retransmits: Int?
        public var seconds: Double { end - start }
        public var megabitsPerSecond: Double { bitsPerSecond / 1e6 }
        public var description: String {
            String(format: "%.1f Mbit/s, %.1f MiB in %.2f s", megabitsPerSecond, bytes / 1_048_576, seconds)
                + (retransmits.map { ", \($0) retransmits" } ?? "")
        }
    }

    public var sender: Summary?
    public var receiver: Summary?

    public var description: String {
        "sender: \(sender.map { "\($0)" } ?? "none"); receiver: \(receiver.map { "\($0)" } ?? "none")"
    }

    /// Parses the lines (anything before the "[" of each is ignored, e.g. a "VS-IPERF " prefix).
    public init(lines: [String]) {
        for line in lines {
            guard let bracket = line.firstIndex(of: "[") else { continue }
            let words = line[bracket...].split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" }).map(String.init)
            guard let role = words.last, role == "sender" || role == "receiver",
                  let secIndex = words.firstIndex(of: "sec"), secIndex >= 1, words.count >= secIndex + 5 else { continue }
            let interval = words[secIndex - 1].split(separator: "-")
            guard interval.count == 2, let start = Double(interval[0]), let end = Double(interval[1]),
                  let amount = Double(words[secIndex + 1]), let byteUnit = Self.byteUnits[words[secIndex + 2]],
                  let rate = Double(words[secIndex + 3]), let rateUnit = Self.rateUnits[words[secIndex + 4]] else { continue }
            let retransmits = words.count > secIndex + 6 ? Int(words[secIndex + 5]) : nil
            let summary = Summary(start: start, end: end, bytes: amount * byteUnit, bitsPerSecond: rate * rateUnit,
                                  retransmits: retransmits)
            if role == "sender" { sender = summary } else { receiver = summary }
        }
    }

    static let byteUnits: [String: Double] = ["Bytes": 1, "KBytes": 1024, "MBytes": 1_048_576, "GBytes": 1_073_741_824,
                                              "TBytes": 1_099_511_627_776]
    static let rateUnits: [String: Double] = ["bits/sec": 1, "Kbits/sec": 1e3, "Mbits/sec": 1e6, "Gbits/sec": 1e9, "Tbits/sec": 1e12]
}
