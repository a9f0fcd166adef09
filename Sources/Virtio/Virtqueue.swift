/// A device-side virtqueue of either ring layout, for the control plane (publication,
/// management reads). The dataplane does not switch on this per packet: it keeps unmanaged
/// references to the concrete class.
public enum Virtqueue: @unchecked Sendable {  // see the classes' threading notes
    case split(SplitVirtqueue)
    case packed(PackedVirtqueue)

    public enum Layout: String, Sendable {
        case split, packed
    }

    public var layout: Layout {
        switch self {
        case .split: .split
        case .packed: .packed
        }
    }

    public var split: SplitVirtqueue? {
        if case .split(let queue) = self { queue } else { nil }
    }

    public var packed: PackedVirtqueue? {
        if case .packed(let queue) = self { queue } else { nil }
    }

    /// The ring as the control plane reads it, whichever its layout.
    public var ring: any VirtqueueControl {
        switch self {
        case .split(let queue): queue
        case .packed(let queue): queue
        }
    }

    /// The queue object (for identity and for keeping it alive).
    public var object: AnyObject { ring }

    public static func === (lhs: Virtqueue, rhs: Virtqueue) -> Bool { lhs.object === rhs.object }

    /// What the ring took from the device (`NegotiatedRingSettings`).
    public var settings: NegotiatedRingSettings { ring.settings }
    public var memory: GuestMemory { settings.memory }
    public var statistics: VirtqueueStatistics { settings.statistics }
    public var negotiatedFeatures: UInt64 { settings.negotiatedFeatures }
    /// The call eventfd, -1 for none.
    public var callDescriptor: Int32 { settings.callDescriptor }
    public var dirtyLog: DirtyLog? { settings.dirtyLog }
    public var logsUsedRing: Bool { ring.logsUsedRing }
    public var isBroken: Bool { ring.isBroken }
    /// The next avail position (split: the 16-bit index; packed: the slot, without the wrap bit).
    /// Owner thread only.
    public var lastAvailIndex: UInt16 { ring.lastAvailIndex }
    /// What GET_VRING_BASE returns for this position (packed: index | avail wrap << 15). Owner thread only.
    public var vringBase: UInt16 { ring.vringBase }
    /// The used position in the same encoding (split: the used index, which trails
    /// `vringBase` only by heads consumed without a used entry). Owner thread only.
    public var usedBase: UInt16 { ring.usedBase }
}

/// What the control plane reads of a ring (publication, GET_VRING_BASE, the API); the
/// dataplane calls the classes' own burst methods (`PortDriver`), never through this.
public protocol VirtqueueControl: AnyObject {
    var settings: NegotiatedRingSettings { get }
    var logsUsedRing: Bool { get }
    var isBroken: Bool { get }
    var lastAvailIndex: UInt16 { get }
    var vringBase: UInt16 { get }
    var usedBase: UInt16 { get }
}

extension SplitVirtqueue: VirtqueueControl {
    /// A split ring's position is its 16-bit avail index.
    public var vringBase: UInt16 { lastAvailIndex }
    public var usedBase: UInt16 { lastUsedIndex }
}

extension PackedVirtqueue: VirtqueueControl {
    public var usedBase: UInt16 { usedVringBase }
}
