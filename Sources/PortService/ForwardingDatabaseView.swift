/// The MAC learning table (GET /v1/fdb), entries sorted by MAC.
public struct ForwardingDatabaseView: Sendable {
    public struct Entry: Sendable {
        public var mac: UInt64
        /// nil when the port was deleted since the entry was learned.
        public var portName: String?
        public var portID: Int
        public var ageSeconds: UInt32
    }

    public var capacity: Int
    public var agingSeconds: UInt32
    public var entries: [Entry]
}
