import Virtio

/// What one vhost-user session is, as plain values, for a live hand-over to a new process
/// (`VhostUserControlLoop.handOver`, `adoptDevice`). Fds are named by their index in the
/// hand-over's one descriptor list (`VhostUserHandover.descriptors`); nil is NOFD or none.
/// The importing side trusts none of it: `VhostUserSessionReplay` turns it back into the
/// front-end's own requests, which go through the same rules, decoding and validation as
/// any front-end's.
public struct VhostUserSessionExport: Equatable, Sendable {
    /// A region as the front-end described it, and its fd's index.
    public struct MemoryRegion: Equatable, Sendable {
        public var region: GuestMemoryRegionDescriptor
        public var descriptor: Int

        public init(region: GuestMemoryRegionDescriptor, descriptor: Int) {
            self.region = region
            self.descriptor = descriptor
        }
    }

    /// SET_LOG_BASE as the front-end sent it; `active` is LOG_ALL negotiated with it.
    public struct DirtyLog: Equatable, Sendable {
        public var descriptor: Int
        public var size: UInt64
        public var offset: UInt64

        public init(descriptor: Int, size: UInt64, offset: UInt64) {
            self.descriptor = descriptor
            self.size = size
            self.offset = offset
        }
    }

    /// Where a ring resumes. Split rings: 16-bit indices, no wrap counters. Packed rings:
    /// 15-bit indices inside the ring and their wrap counters (VIRTIO 1.1 2.8.1).
    public struct RingPosition: Equatable, Sendable {
        public var lastAvailIndex: UInt16
        public var lastUsedIndex: UInt16
        public var availWrapCounter: Bool?
        public var usedWrapCounter: Bool?

        public init(lastAvailIndex: UInt16, lastUsedIndex: UInt16, availWrapCounter: Bool? = nil, usedWrapCounter: Bool? = nil) {
            self.lastAvailIndex = lastAvailIndex
            self.lastUsedIndex = lastUsedIndex
            self.availWrapCounter = availWrapCounter
            self.usedWrapCounter = usedWrapCounter
        }
    }

    public struct Vring: Equatable, Sendable {
        public var index: Int
        public var size: Int?
        public var addresses: VringAddresses?
        /// nil: no SET_VRING_BASE yet (a packed ring then starts at slot 0, wrap 1).
        public var position: RingPosition?
        /// SET_VRING_ENABLE's value; nil when never sent.
        public var enabled: Bool?
        /// Started (kick received, not stopped since): `kick` is its fd, or nil for NOFD.
        public var started: Bool
        public var kick: Int?
        public var call: Int?
        public var err: Int?

        public init(index: Int, size: Int? = nil, addresses: VringAddresses? = nil, position: RingPosition? = nil,
                    enabled: Bool? = nil, started: Bool = false, kick: Int? = nil, call: Int? = nil, err: Int? = nil) {
            self.index = index
            self.size = size
            self.addresses = addresses
            self.position = position
            self.enabled = enabled
            self.started = started
            self.kick = kick
            self.call = call
            self.err = err
        }
    }

    /// The connected socket's index.
    public var socket: Int
    /// The device's offer when the session started (what the front-end negotiated against).
    public var offeredFeatures: UInt64
    public var negotiatedFeatures: UInt64?
    public var negotiatedProtocolFeatures: UInt64?
    public var status: UInt8
    public var mtu: Int?
    public var memoryRegions: [MemoryRegion]
    public var dirtyLog: DirtyLog?
    /// The rings any message named (untouched rings are left out).
    public var vrings: [Vring]

    public init(socket: Int, offeredFeatures: UInt64, negotiatedFeatures: UInt64? = nil, negotiatedProtocolFeatures: UInt64? = nil,
                status: UInt8 = 0, mtu: Int? = nil, memoryRegions: [MemoryRegion] = [], dirtyLog: DirtyLog? = nil, vrings: [Vring] = []) {
        self.socket = socket
        self.offeredFeatures = offeredFeatures
        self.negotiatedFeatures = negotiatedFeatures
        self.negotiatedProtocolFeatures = negotiatedProtocolFeatures
        self.status = status
        self.mtu = mtu
        self.memoryRegions = memoryRegions
        self.dirtyLog = dirtyLog
        self.vrings = vrings
    }

    /// Every fd index the session names, in the order the replay takes them.
    public var descriptorIndices: [Int] {
        [socket] + memoryRegions.map(\.descriptor) + (dirtyLog.map { [$0.descriptor] } ?? [])
            + vrings.flatMap { [$0.kick, $0.call, $0.err].compactMap { $0 } }
    }
}

/// One device of a hand-over: its listener (server mode), its session, and the counters the
/// API shows, so the new process answers as the old one did.
public struct VhostUserDeviceExport: Equatable, Sendable {
    public var name: String
    /// The listening socket's index (server mode).
    public var listener: Int?
    public var session: VhostUserSessionExport?
    public var sessions: UInt64
    public var refusedRequests: UInt64
    public var sessionsClosedOnError: UInt64
    public var guestFaults: UInt64

    public init(name: String, listener: Int? = nil, session: VhostUserSessionExport? = nil, sessions: UInt64 = 0,
                refusedRequests: UInt64 = 0, sessionsClosedOnError: UInt64 = 0, guestFaults: UInt64 = 0) {
        self.name = name
        self.listener = listener
        self.session = session
        self.sessions = sessions
        self.refusedRequests = refusedRequests
        self.sessionsClosedOnError = sessionsClosedOnError
        self.guestFaults = guestFaults
    }
}
