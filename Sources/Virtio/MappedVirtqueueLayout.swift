/// A ring's areas translated through the memory table, in the layout the negotiated features
/// choose: split (VIRTIO 1.1 2.7) or packed (2.8, RING_PACKED).
public enum MappedVirtqueueLayout: @unchecked Sendable {  // plain pointers, like the layouts it holds
    case split(VirtqueueLayout)
    case packed(PackedVirtqueueLayout)

    public var split: VirtqueueLayout? {
        if case .split(let layout) = self { layout } else { nil }
    }

    public var packed: PackedVirtqueueLayout? {
        if case .packed(let layout) = self { layout } else { nil }
    }
}
