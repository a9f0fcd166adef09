/// Where a ring resumes when its queue is (re)built: what SET_VRING_BASE said, or what a
/// queue taken back from the dataplane reached. Split rings: 16-bit indices. Packed rings
/// (like DPDK): bits 0-14 the index, bit 15 the wrap counter (`PackedVirtqueue.decodeBase`).
public struct VirtqueuePosition: Equatable, Sendable {
    /// The next avail position to process.
    public var base: UInt16
    /// The used position a taken-back queue reached, in the same encoding; nil means equal to
    /// `base` (after SET_VRING_BASE). A queue rebuilt while the ring runs (new log, features,
    /// memory table) resumes from both, so what was consumed without a used entry (an
    /// invalid head) is not taken again.
    public var usedBase: UInt16?
    /// A base was given (SET_VRING_BASE, or a queue taken back). A packed ring without one
    /// starts where a new ring does: slot 0, wrap counter 1 (2.8.1).
    public var baseIsSet: Bool

    public init(base: UInt16, usedBase: UInt16? = nil, baseIsSet: Bool = true) {
        self.base = base
        self.usedBase = usedBase
        self.baseIsSet = baseIsSet
    }

    /// A ring nothing was said about yet.
    public static let initial = VirtqueuePosition(base: 0, baseIsSet: false)

    /// The base in the packed encoding, a new ring's start when none was given.
    public var packedBase: UInt16 { baseIsSet ? base : PackedVirtqueue.encodeBase(index: 0, wrap: true) }
}

extension Virtqueue {
    /// Where a queue rebuilt from this one resumes: both of its positions. Owner thread only
    /// (the control plane calls it after the queue was withdrawn from the dataplane).
    public var resumePosition: VirtqueuePosition { VirtqueuePosition(base: vringBase, usedBase: usedBase) }
}
