import Dataplane
import Synchronization
import VhostSystem

/// Numbers every switch event, keeps the last `capacity` of them for replay
/// (Last-Event-ID, ?since=N, GET /v1/events as JSON) and pushes each new one to the open
/// event streams whose filter it matches. Install `handler` as the PortService's event
/// handler. Publishing never blocks on a client: a stream that falls too far behind is cut.
public final class EventHub: Sendable {
    public struct Event: Sendable, Equatable {
        public var id: UInt64
        public var event: SwitchEvent
    }

    /// Which events a client wants: nil means all.
    public struct Filter: Sendable, Equatable {
        public var types: Set<SwitchEvent.Kind>?
        public var port: String?

        public init(types: Set<SwitchEvent.Kind>? = nil, port: String? = nil) {
            self.types = types
            self.port = port
        }

        public func matches(_ event: SwitchEvent) -> Bool {
            if let types, !types.contains(event.kind) { return false }
            if let port, event.port != port { return false }
            return true
        }
    }

    private struct Subscriber {
        var stream: EventStream
        var filter: Filter
        /// Who opened it (`HTTPRequest.client`), for the per-client limit.
        var client: String?
    }

    /// How many streams may be open: in all (below the server's connection limit, so other
    /// requests always find a connection), and per client.
    public struct Limits: Sendable, Equatable {
        public var total = 32
        public var perClient = 8

        public init(total: Int = 32, perClient: Int = 8) {
            self.total = total
            self.perClient = perClient
        }
    }

    /// Why `subscribe(since:filter:client:)` opened no stream.
    public enum Refusal: Error, Equatable {
        case clientLimit(Int)
        case totalLimit(Int)
    }

    private struct State {
        var nextID: UInt64 = 1
        var history: [Event] = []
        var start = 0  // ring buffer head once full
        var subscribers: [Subscriber] = []
        var counts: [SwitchEvent.Kind: UInt64] = [:]
    }

    public let capacity: Int
    public let limits: Limits
    private let state = Mutex(State())
    /// Also told about every event (the daemon logs through it; persistence may listen).
    private let observers = Mutex<[SwitchEventHandler]>([])

    public init(capacity: Int = 1024, limits: Limits = Limits()) {
        self.capacity = max(1, capacity)
        self.limits = limits
    }

    /// The closure to install as the switch's event handler.
    public var handler: SwitchEventHandler {
        { [weak self] event in self?.publish(event) }
    }

    public func addObserver(_ observer: @escaping SwitchEventHandler) {
        observers.withLock { $0.append(observer) }
    }

    /// The id of the last event published (0: none yet).
    public var lastEventID: UInt64 { state.withLock { $0.nextID - 1 } }

    /// After a live hand-over: ids go on from the old daemon's last one, so a client's
    /// Last-Event-ID stays meaningful. Never goes back.
    public func continueNumbering(after id: UInt64) {
        state.withLock { $0.nextID = max($0.nextID, id &+ 1) }
    }

    @discardableResult
    public func publish(_ event: SwitchEvent) -> UInt64 {
        let id = state.withLock { state -> UInt64 in
            let id = state.nextID
            state.nextID += 1
            let numbered = Event(id: id, event: event)
            if state.history.count < capacity {
                state.history.append(numbered)
            } else {
                state.history[state.start] = numbered
                state.start = (state.start + 1) % capacity
            }
            state.counts[event.kind, default: 0] += 1
            // Under the lock so a new subscriber's replay and live events never overlap or gap.
            let bytes = Self.serverSentEvent(numbered)
            state.subscribers.removeAll { subscriber in
                guard subscriber.filter.matches(event) else { return subscriber.stream.isFinished }
                return !subscriber.stream.send(bytes)
            }
            return id
        }
        for observer in observers.withLock({ $0 }) { observer(event) }
        return id
    }

    /// Events with an id above `since`, oldest first, that match `filter`.
    public func history(since: UInt64 = 0, filter: Filter = Filter()) -> [Event] {
        state.withLock { state in
            Self.ordered(state).filter { $0.id > since && filter.matches($0.event) }
        }
    }

    /// The id the next event will get (1 when none happened yet).
    public var nextID: UInt64 { state.withLock { $0.nextID } }

    /// Events published per type since start.
    public var counts: [SwitchEvent.Kind: UInt64] { state.withLock { $0.counts } }

    /// Open subscriptions (finished ones are dropped on the next publish or heartbeat).
    public var subscriberCount: Int { state.withLock { $0.subscribers.filter { !$0.stream.isFinished }.count } }

    /// A stream that starts with the matching history after `since` (when given) and then
    /// receives every matching event as it is published.
    public func subscribe(since: UInt64?, filter: Filter) -> EventStream {
        state.withLock { state in Self.add(&state, since: since, filter: filter, client: nil) }
    }

    /// Like `subscribe(since:filter:)`, within `limits`: a client with `perClient` open
    /// streams, or a hub with `total`, gets none.
    public func subscribe(since: UInt64?, filter: Filter, client: String?) throws(Refusal) -> EventStream {
        try state.withLock { state throws(Refusal) -> EventStream in
            let open = state.subscribers.filter { !$0.stream.isFinished }
            if let client, open.count(where: { $0.client == client }) >= limits.perClient {
                throw .clientLimit(limits.perClient)
            }
            if open.count >= limits.total { throw .totalLimit(limits.total) }
            return Self.add(&state, since: since, filter: filter, client: client)
        }
    }

    private static func add(_ state: inout State, since: UInt64?, filter: Filter, client: String?) -> EventStream {
        // "retry" tells EventSource clients how long to wait before reconnecting.
        var initial = Array("retry: 2000\n: vhost-switch events; next id \(state.nextID)\n\n".utf8)
        if let since {
            for event in Self.ordered(state) where event.id > since && filter.matches(event.event) {
                initial.append(contentsOf: Self.serverSentEvent(event))
            }
        }
        let stream = EventStream(initial: initial)
        state.subscribers.append(Subscriber(stream: stream, filter: filter, client: client))
        return stream
    }

    /// Sends an SSE comment to every stream: proxies keep the connection, and a client
    /// that went away is noticed (its write fails) and forgotten.
    public func heartbeat() {
        let comment = Array(": keepalive\n\n".utf8)
        state.withLock { state in
            state.subscribers.removeAll { !$0.stream.send(comment) }
        }
    }

    /// Ends every stream (shutdown).
    public func closeAll() {
        let streams = state.withLock { state -> [EventStream] in
            defer { state.subscribers = [] }
            return state.subscribers.map(\.stream)
        }
        for stream in streams { stream.close() }
    }

    private static func ordered(_ state: State) -> [Event] {
        Array(state.history[state.start...] + state.history[..<state.start])
    }

    // MARK: Representations

    public static func json(_ event: Event) -> JSON {
        var data: [String: JSON] = [:]
        for (key, value) in event.event.data {
            switch value {
            case .string(let text): data[key] = .string(text)
            case .integer(let number): data[key] = .integer(number)
            case .bool(let flag): data[key] = .bool(flag)
            }
        }
        return [
            "id": .integer(Int64(event.id)),
            "time": .string(Timestamp.rfc3339(milliseconds: event.event.time)),
            "type": .string(event.event.kind.rawValue),
            "port": event.event.port.map { .string($0) } ?? .null,
            "data": .object(data),
        ]
    }

    /// One SSE frame: "id", "event" (the type, for EventSource listeners) and one "data" line.
    static func serverSentEvent(_ event: Event) -> [UInt8] {
        Array("id: \(event.id)\nevent: \(event.event.kind.rawValue)\ndata: \(json(event).rendered())\n\n".utf8)
    }
}

/// Wall-clock milliseconds as RFC 3339 UTC text, without calling into libc.
enum Timestamp {
    static func rfc3339(milliseconds: UInt64) -> String {
        let totalSeconds = Int64(milliseconds / 1000)
        let millis = Int(milliseconds % 1000)
        let days = totalSeconds >= 0 ? totalSeconds / 86400 : (totalSeconds - 86399) / 86400
        let secondsOfDay = Int(totalSeconds - days * 86400)
        // Howard Hinnant's civil_from_days.
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let mp = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
        func pad(_ value: Int64, _ width: Int) -> String {
            let text = String(value)
            return String(repeating: "0", count: max(0, width - text.count)) + text
        }
        return "\(pad(year, 4))-\(pad(month, 2))-\(pad(day, 2))T\(pad(Int64(secondsOfDay / 3600), 2)):"
            + "\(pad(Int64(secondsOfDay % 3600 / 60), 2)):\(pad(Int64(secondsOfDay % 60), 2)).\(pad(Int64(millis), 3))Z"
    }
}
