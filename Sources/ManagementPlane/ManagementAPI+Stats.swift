import PortService

/// /v1/ports/{name}/stats and /v1/stats.
extension ManagementAPI {
    static func portStatsJSON(_ port: PortStatistics) -> JSON {
        var object: [String: JSON] = [
            "name": .string(port.name),
            "rx": CounterJSON.object(port.rx),
            "tx": CounterJSON.object(port.tx),
        ]
        // What the switch itself counted for this port, summed over poll threads, and two
        // ring drops the switch object shows too.
        var switchCounters: [String: JSON] = ["drops": [
            "no_guest_buffers": count(port.tx.dropsNoBuffers),
            "malformed_descriptor": count(port.rx.dropsMalformedDescriptor &+ port.tx.dropsMalformedDescriptor),
        ]]
        CounterJSON.add(port.switchCounters, to: &switchCounters)
        object["switch"] = .object(switchCounters)
        if let kernel = port.kernel {
            var kernelCounters: [String: JSON] = ["interface_up": .bool(port.linkUp ?? false)]
            CounterJSON.add(kernel, to: &kernelCounters)
            kernelCounters["sockets"] = .array(port.kernelSockets.enumerated().map { index, socket in
                var counters: [String: JSON] = ["index": .integer(Int64(index))]
                CounterJSON.add(socket, to: &counters)
                return .object(counters)
            })
            object["kernel"] = .object(kernelCounters)
        }
        if let info = port.device {
            object["state"] = .string(info.state.rawValue)
            object["sessions"] = count(info.sessions)
            object["refused_requests"] = count(info.refusedRequests)
            object["sessions_closed_on_error"] = count(info.sessionsClosedOnError)
            object["guest_faults"] = count(info.guestFaults)
            object["vrings"] = .array(port.vrings.map { vring in
                ["index": .integer(Int64(vring.index)), "counters": CounterJSON.object(vring.counters)]
            })
        }
        return .object(object)
    }

    func getPortStats(_ name: String) throws(APIError) -> HTTPResponse {
        do { return .json(Self.portStatsJSON(try service.statistics(port: name))) } catch { throw APIError(error) }
    }

    func getStats() throws(APIError) -> HTTPResponse {
        let statistics = service.switchStatistics
        let threads = statistics.pollThreads.map { thread -> JSON in
            let s = thread.statistics
            return [
                "index": .integer(Int64(thread.index)),
                "iterations": Self.count(s.iterations),
                "busy_cycles": Self.count(s.busyCycles),
                "idle_cycles": Self.count(s.idleCycles),
                "packets": Self.count(s.packets),
                "sleeps": Self.count(s.sleeps),
                "busy_cycles_per_packet": .number(s.busyCyclesPerPacket),
                "busy_ratio": .number(s.busyRatio),
                "max_burst_ns": Self.count(s.maxIterationNanoseconds),
                "queues": .array(thread.queues.map {
                    ["port": .string($0.portName), "vring": .integer(Int64($0.vringIndex)), "pinned": .bool($0.pinned)]
                }),
            ]
        }
        return .json([
            "ports": .array(statistics.ports.map(Self.portStatsJSON)),
            "poll_threads": .array(threads),
            "fdb": ["entries": .integer(Int64(statistics.fdbEntries)), "capacity": .integer(Int64(statistics.fdbCapacity))],
            "events": ["published": .integer(Int64(events.nextID - 1)), "subscribers": .integer(Int64(events.subscriberCount))],
        ])
    }
}
