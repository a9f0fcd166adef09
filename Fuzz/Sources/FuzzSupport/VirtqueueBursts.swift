import Virtio

/// The bursts a poll thread runs, on a published ring of either layout: the fuzzers drive the
/// `Virtqueue`s the control plane publishes. (The daemon's poll loop calls the ring classes
/// through `PortDriver`, never through the enum, which therefore has no burst methods.)
extension Virtqueue {
    public func dequeueBurst(into buffers: UnsafeMutablePointer<PacketBuffer>, maxCount: Int) -> Int {
        switch self {
        case .split(let ring): ring.dequeueBurst(into: buffers, maxCount: maxCount)
        case .packed(let ring): ring.dequeueBurst(into: buffers, maxCount: maxCount)
        }
    }

    public func enqueueBurst(_ buffers: UnsafePointer<PacketBuffer>, count: Int) -> Int {
        switch self {
        case .split(let ring): ring.enqueueBurst(buffers, count: count)
        case .packed(let ring): ring.enqueueBurst(buffers, count: count)
        }
    }

    public func hasAvailableBuffers() -> Bool {
        switch self {
        case .split(let ring): ring.hasAvailableBuffers()
        case .packed(let ring): ring.hasAvailableBuffers()
        }
    }

    public func setGuestNotifications(enabled: Bool) {
        switch self {
        case .split(let ring): ring.setGuestNotifications(enabled: enabled)
        case .packed(let ring): ring.setGuestNotifications(enabled: enabled)
        }
    }
}
