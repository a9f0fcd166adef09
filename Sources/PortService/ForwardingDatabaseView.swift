/// The MAC learning table (GET /v1/fdb), entries sorted by MAC, then VLAN.
public struct ForwardingDatabaseView: Sendable {
    public struct Entry: Sendable {
        public var mac: UInt64
        /// The VLAN it was learned in; nil on the untagged default segment.
        public var vlan: Int?
        /// nil when the port was deleted since the entry was learned.
        public var portName: String?
        public var portID: Int
        public var ageSeconds: UInt32
    }

    public var capacity: Int
    public var agingSeconds: UInt32
    public var entries: [Entry]
}
