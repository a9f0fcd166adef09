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

    /// The queue object (for identity and for keeping it alive).
    public var object: AnyObject {
        switch self {
        case .split(let queue): queue
        case .packed(let queue): queue
        }
    }

    public static func === (lhs: Virtqueue, rhs: Virtqueue) -> Bool { lhs.object === rhs.object }

    /// What the ring took from the device (`NegotiatedRingSettings`).
    public var settings: NegotiatedRingSettings {
        switch self {
        case .split(let queue): queue.settings
        case .packed(let queue): queue.settings
        }
    }

    public var memory: GuestMemory { settings.memory }
    public var statistics: VirtqueueStatistics { settings.statistics }
    public var negotiatedFeatures: UInt64 { settings.negotiatedFeatures }
    /// The call eventfd, -1 for none.
    public var callDescriptor: Int32 { settings.callDescriptor }
    public var dirtyLog: DirtyLog? { settings.dirtyLog }

    public var logsUsedRing: Bool {
        switch self {
        case .split(let queue): queue.logsUsedRing
        case .packed(let queue): queue.logsUsedRing
        }
    }

    public var isBroken: Bool {
        switch self {
        case .split(let queue): queue.isBroken
        case .packed(let queue): queue.isBroken
        }
    }

    /// The next avail position (split: the 16-bit index; packed: the slot, without the wrap bit).
    /// Owner thread only.
    public var lastAvailIndex: UInt16 {
        switch self {
        case .split(let queue): queue.lastAvailIndex
        case .packed(let queue): queue.lastAvailIndex
        }
    }

    /// What GET_VRING_BASE returns for this position (packed: index | avail wrap << 15). Owner thread only.
    public var vringBase: UInt16 {
        switch self {
        case .split(let queue): queue.lastAvailIndex
        case .packed(let queue): queue.vringBase
        }
    }

    /// The used position in the same encoding (split: the used index, which trails
    /// `vringBase` only by heads consumed without a used entry). Owner thread only.
    public var usedBase: UInt16 {
        switch self {
        case .split(let queue): queue.lastUsedIndex
        case .packed(let queue): queue.usedVringBase
        }
    }

    public func setGuestNotifications(enabled: Bool) {
        switch self {
        case .split(let queue): queue.setGuestNotifications(enabled: enabled)
        case .packed(let queue): queue.setGuestNotifications(enabled: enabled)
        }
    }

    public func hasAvailableBuffers() -> Bool {
        switch self {
        case .split(let queue): queue.hasAvailableBuffers()
        case .packed(let queue): queue.hasAvailableBuffers()
        }
    }

    public func dequeueBurst(into buffers: UnsafeMutablePointer<PacketBuffer>, maxCount: Int) -> Int {
        switch self {
        case .split(let queue): queue.dequeueBurst(into: buffers, maxCount: maxCount)
        case .packed(let queue): queue.dequeueBurst(into: buffers, maxCount: maxCount)
        }
    }

    public func enqueueBurst(_ buffers: UnsafePointer<PacketBuffer>, count: Int) -> Int {
        switch self {
        case .split(let queue): queue.enqueueBurst(buffers, count: count)
        case .packed(let queue): queue.enqueueBurst(buffers, count: count)
        }
    }
}
