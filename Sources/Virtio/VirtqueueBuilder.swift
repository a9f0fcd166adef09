import VhostSystem

/// Builds the queue the dataplane gets for a ring the control plane set up: the ring's
/// mapped layout and position plus the settings both layouts take (`NegotiatedRingSettings`:
/// what the whole device shares and the ring's own call fd and counters), worked out once here.
public struct VirtqueueBuilder {
    public var settings: NegotiatedRingSettings

    public init(_ settings: NegotiatedRingSettings) {
        self.settings = settings
    }

    /// A fresh queue and the position it really starts from (see `makeSplit`).
    public func make(_ layout: MappedVirtqueueLayout, at position: VirtqueuePosition) -> (queue: Virtqueue, position: VirtqueuePosition) {
        switch layout {
        case .split(let split):
            let (queue, started) = makeSplit(split, at: position)
            return (.split(queue), started)
        case .packed(let packed):
            return (.packed(makePacked(packed, at: position)), position)
        }
    }

    /// A front-end that reconnects without knowing where it was (DPDK virtio-user sends
    /// SET_VRING_BASE 0 while its rings carry on) would leave us far behind the guest's
    /// avail index, which reads as a broken ring: like DPDK's back-end, resume from the used
    /// index in guest memory when it disagrees with the base (nothing is in flight between
    /// bursts, so used == last avail for this switch). A queue rebuilt from one taken back
    /// resumes exactly where that one stopped (`usedBase` set): the guest-memory check is
    /// only for a base the front-end sent. Returns the position the queue starts from.
    public func makeSplit(_ layout: VirtqueueLayout, at position: VirtqueuePosition) -> (SplitVirtqueue, VirtqueuePosition) {
        let build = { (base: UInt16, used: UInt16?) in
            SplitVirtqueue(layout: layout, settings: settings, lastAvailIndex: base, lastUsedIndex: used)
        }
        if let usedBase = position.usedBase { return (build(position.base, usedBase), position) }
        let queue = build(position.base, nil)
        let used = queue.currentUsedIndex()
        guard used != position.base else { return (queue, position) }
        var resumed = position
        resumed.base = used
        return (build(used, nil), resumed)
    }

    /// A packed ring resumes exactly at the base (and, rebuilt from a queue taken back, at
    /// that queue's used position): there is no used index in guest memory to check it
    /// against (DPDK's back-end does the same). A base outside the ring gives a broken queue.
    public func makePacked(_ layout: PackedVirtqueueLayout, at position: VirtqueuePosition) -> PackedVirtqueue {
        let (index, wrap) = PackedVirtqueue.decodeBase(position.packedBase)
        let used = position.usedBase.map(PackedVirtqueue.decodeBase)
        return PackedVirtqueue(layout: layout, settings: settings, lastAvailIndex: index, availWrapCounter: wrap,
                               lastUsedIndex: used?.index, usedWrapCounter: used?.wrap)
    }

    /// A read-only view of a split ring for the indices in guest memory: never published,
    /// never writes guest memory (a stopped ring belongs to the front-end).
    public func observer(_ layout: VirtqueueLayout, at base: UInt16) -> SplitVirtqueue {
        SplitVirtqueue(layout: layout, settings: settings.observing, lastAvailIndex: base, observeOnly: true)
    }
}
