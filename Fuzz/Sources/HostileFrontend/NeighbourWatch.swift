import TestSupport
import VhostSystem

/// The ports the hostile cases must not disturb (`--neighbour`: ports of the same daemon that
/// keep forwarding, such as testpmd's), read through the daemon's API (`--api`) between cases,
/// at most every `interval`. When a neighbour's received count has not risen for `stall`, the
/// cases that ran meanwhile are named: issue 16's "for each case, the other ports keep
/// forwarding", attributed case by case (a case lasts milliseconds, too short to judge alone:
/// a front-end at low priority may not run at all during one).
final class NeighbourWatch {
    private let api: SwitchAPIClient
    let ports: [String]
    private let stallNanoseconds: UInt64
    private let intervalNanoseconds: UInt64 = 100_000_000
    private var received: [String: Int] = [:]
    private var lastProgress: [String: UInt64] = [:]
    private var casesSinceProgress: [String: Set<String>] = [:]
    private var lastCheck: UInt64 = 0
    private(set) var checks = 0
    private(set) var longestWithoutProgressMilliseconds: UInt64 = 0
    /// One line per stall: the port, how long, and the cases that ran meanwhile.
    private(set) var stalls: [String] = []

    init(apiSocket: String, ports: [String], stallMilliseconds: UInt64) {
        api = SwitchAPIClient(socketPath: apiSocket)
        self.ports = ports
        stallNanoseconds = stallMilliseconds * 1_000_000
    }

    /// Starts the clock: every neighbour must move from here on.
    func start() {
        let now = MonotonicClock.nanoseconds()
        for port in ports { lastProgress[port] = now }
        check(now)
    }

    /// After each case: remembers it ran, and looks at the neighbours if `interval` has passed.
    func caseRan(_ name: String) {
        for port in ports { casesSinceProgress[port, default: []].insert(name) }
        let now = MonotonicClock.nanoseconds()
        if now &- lastCheck >= intervalNanoseconds { check(now) }
    }

    private func check(_ now: UInt64) {
        lastCheck = now
        guard let counters = try? api.portCounters() else {
            stalls.append("GET /v1/stats failed")
            return
        }
        checks += 1
        for port in ports {
            let count = counters[port]?["switch.rx_packets"] ?? -1
            let since = now &- (lastProgress[port] ?? now)
            longestWithoutProgressMilliseconds = max(longestWithoutProgressMilliseconds, since / 1_000_000)
            if count > received[port] ?? -1 {
                received[port] = count
                lastProgress[port] = now
                casesSinceProgress[port] = []
            } else if since >= stallNanoseconds {
                let cases = (casesSinceProgress[port] ?? []).sorted().joined(separator: ", ")
                stalls.append("port \(port) received nothing for \(since / 1_000_000) ms while these cases ran: \(cases)")
                lastProgress[port] = now  // one report per stalled window
                casesSinceProgress[port] = []
            }
        }
    }
}
