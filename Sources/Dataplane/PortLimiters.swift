/// One poll thread's rate and storm limiters, one per port id: a token bucket refilled from
/// the TSC time of the poll iteration, and per-second counts of broadcast, multicast and
/// unknown-unicast frames. Checked once per burst (`begin`/`end`), no system call and no
/// shared cache line. The state lives here, not in the snapshot, so a republish does not
/// refill a bucket; a new policy (a new `generation`) starts it afresh.
final class PortLimiters {
    struct State {
        var generation: UInt64 = 0
        var tokens: UInt64 = 0
        var refilledAtCycles: UInt64 = 0
        var second: UInt32 = 0
        /// Flooded frames passed in `second`.
        var flooded = PortRules.FloodKinds.none
    }

    /// What a burst may still pass: frames (tokens) and flooded frames of each kind.
    struct Allowance {
        var tokens: UInt64 = .max
        var flooded = PortRules.FloodKinds.unlimited
    }

    private let maxPorts: Int
    // Unsafe: maxPorts states, allocated once, freed in deinit.
    private let states: UnsafeMutablePointer<State>

    init(maxPorts: Int) {
        self.maxPorts = maxPorts
        states = .allocate(capacity: maxPorts)
        states.initialize(repeating: State(), count: maxPorts)
    }

    deinit { states.deallocate() }

    /// The allowance of a burst from `port` at TSC time `cycles`, second `second`.
    @inline(__always)
    func begin(port: Int, rules: PortRules, cycles: UInt64, second: UInt32) -> Allowance {
        guard port < maxPorts, rules.rate != nil || rules.storm != nil else { return Allowance() }
        // Unsafe: port < maxPorts.
        let state = states + port
        if state.pointee.generation != rules.generation {
            state.pointee = State(generation: rules.generation, tokens: rules.rate?.depth ?? 0, refilledAtCycles: cycles, second: second)
        }
        var allowance = Allowance()
        if let rate = rules.rate {
            // A TSC read on another core may lag the last refill a little: no time passed.
            let elapsed = cycles > state.pointee.refilledAtCycles ? cycles &- state.pointee.refilledAtCycles : 0
            let earned = elapsed / rate.cyclesPerToken
            if earned > 0 {
                let tokens = state.pointee.tokens &+ min(earned, rate.depth)
                state.pointee.tokens = min(tokens, rate.depth)
                state.pointee.refilledAtCycles = state.pointee.tokens == rate.depth
                    ? cycles : state.pointee.refilledAtCycles &+ earned &* rate.cyclesPerToken
            }
            allowance.tokens = state.pointee.tokens
        }
        if let storm = rules.storm {
            if state.pointee.second != second {
                state.pointee.second = second
                state.pointee.flooded = .none
            }
            let used = state.pointee.flooded
            allowance.flooded = .init(broadcast: storm.broadcast &- min(storm.broadcast, used.broadcast),
                                      multicast: storm.multicast &- min(storm.multicast, used.multicast),
                                      unknownUnicast: storm.unknownUnicast &- min(storm.unknownUnicast, used.unknownUnicast))
        }
        return allowance
    }

    /// Records what the burst used of the allowance `begin` gave.
    @inline(__always)
    func end(port: Int, rules: PortRules, left: Allowance) {
        guard port < maxPorts, rules.rate != nil || rules.storm != nil else { return }
        // Unsafe: port < maxPorts.
        let state = states + port
        if rules.rate != nil { state.pointee.tokens = left.tokens }
        if let storm = rules.storm {
            state.pointee.flooded = .init(broadcast: storm.broadcast &- left.flooded.broadcast,
                                          multicast: storm.multicast &- left.flooded.multicast,
                                          unknownUnicast: storm.unknownUnicast &- left.flooded.unknownUnicast)
        }
    }
}
