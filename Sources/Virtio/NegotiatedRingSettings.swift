import VhostSystem

/// What one ring of a device gets from the device and its negotiation, worked out once
/// (by `VirtqueueBuilder`, or a test) and taken as it is by either ring layout: the guest
/// memory, the features and what the rings derive from them, the call eventfd, the ring's
/// counters, the dirty log and the session's fault flag. Everything here must outlive the
/// queue: the call fd is not owned.
public struct NegotiatedRingSettings: @unchecked Sendable {  // immutable; the translator borrows from `memory`, kept alive here
    public let memory: GuestMemory
    public let negotiatedFeatures: UInt64
    /// The call eventfd, -1 for none.
    public let callDescriptor: Int32
    public let statistics: VirtqueueStatistics
    /// The log as given (`log` is the one the rings write to).
    public let dirtyLog: DirtyLog?
    public let faultFlag: GuestFaultFlag?

    @usableFromInline let translator: GuestMemoryTranslator
    /// The virtio-net header every buffer starts with (10 or 12 bytes).
    @usableFromInline let headerSize: Int
    @usableFromInline let eventIndex: Bool
    @usableFromInline let indirect: Bool
    @usableFromInline let mergeableReceiveBuffers: Bool
    /// IN_ORDER: a packed ring gives a transmitted batch back with one used descriptor.
    @usableFromInline let inOrder: Bool
    /// Non-nil only when LOG_ALL is negotiated and a log is set.
    @usableFromInline let log: DirtyLog?
    /// `log != nil`, kept as a plain flag for the per-frame test.
    @usableFromInline let logData: Bool

    /// `dirtyLog` is written only when LOG_ALL is in `negotiatedFeatures`.
    public init(memory: GuestMemory, negotiatedFeatures: UInt64, callDescriptor: Int32 = -1,
                statistics: VirtqueueStatistics = VirtqueueStatistics(), dirtyLog: DirtyLog? = nil, faultFlag: GuestFaultFlag? = nil) {
        self.memory = memory
        self.negotiatedFeatures = negotiatedFeatures
        self.callDescriptor = callDescriptor
        self.statistics = statistics
        self.dirtyLog = dirtyLog
        self.faultFlag = faultFlag
        translator = memory.translator
        headerSize = VirtioNetHeader.size(negotiated: negotiatedFeatures)
        eventIndex = VirtioNetFeature.eventIdx.isSet(in: negotiatedFeatures)
        indirect = VirtioNetFeature.indirectDesc.isSet(in: negotiatedFeatures)
        mergeableReceiveBuffers = VirtioNetFeature.mrgRxbuf.isSet(in: negotiatedFeatures)
        inOrder = VirtioNetFeature.inOrder.isSet(in: negotiatedFeatures)
        let logging = VirtioNetFeature.logAll.isSet(in: negotiatedFeatures) && dirtyLog != nil
        log = logging ? dirtyLog : nil
        logData = logging
    }

    /// The same ring seen by a read-only view: no call eventfd, no log, no fault flag.
    public var observing: NegotiatedRingSettings {
        NegotiatedRingSettings(memory: memory, negotiatedFeatures: negotiatedFeatures, statistics: statistics)
    }
}
