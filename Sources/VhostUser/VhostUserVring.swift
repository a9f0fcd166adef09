import Virtio
import VhostSystem

/// One vring's configuration within a session, as the front-end set it. Only the control
/// thread touches it. `queue` is built from it when the ring is complete and is what the
/// dataplane gets; every change that could invalidate the queue drops it (after the
/// queues were withdrawn) so the next publication builds a fresh one.
final class VhostUserVring {
    let index: Int
    /// Set by SET_VRING_NUM.
    var size: Int?
    /// Set by SET_VRING_ADDR after the addresses were validated against the memory table.
    var addresses: VringAddresses?
    /// The addresses translated through the current memory table, as a split ring or (RING_PACKED
    /// negotiated) a packed ring: desc = descriptor ring, avail = driver event suppression
    /// area, used = device event suppression area.
    var layout: MappedVirtqueueLayout?
    /// Where the queue resumes: SET_VRING_BASE, or what a queue taken back reached.
    var position = VirtqueuePosition.initial
    var kick: FileDescriptor?
    /// SET_VRING_KICK with NOFD: the front-end does not kick; the ring is polled.
    var kickPolled = false
    var call: FileDescriptor?
    var err: FileDescriptor?
    /// SET_VRING_ENABLE; nil means "not set": the default depends on PROTOCOL_FEATURES.
    var explicitlyEnabled: Bool?
    /// Kick received (or NOFD) and not stopped by GET_VRING_BASE since.
    var started = false
    /// Any message named this ring: an untouched ring is not waited for.
    var touched = false
    let statistics = VirtqueueStatistics()
    /// Built on publication; dropped on any change.
    var queue: Virtqueue?

    init(index: Int) { self.index = index }

    func isEnabled(protocolFeaturesNegotiated: Bool) -> Bool {
        // vhost-user.rst "Ring states": without VHOST_USER_F_PROTOCOL_FEATURES a ring starts
        // enabled; with it, it starts disabled until SET_VRING_ENABLE.
        explicitlyEnabled ?? !protocolFeaturesNegotiated
    }

    /// Keeps the processing position and drops the queue object. Callers withdrew the
    /// queues from the dataplane first.
    func dropQueue() {
        if let queue { position = queue.resumePosition }
        queue = nil
    }

    /// Back to the initial state, closing the ring's fds.
    func reset() {
        queue = nil
        size = nil
        addresses = nil
        layout = nil
        position = .initial
        kick?.close()
        kick = nil
        kickPolled = false
        call?.close()
        call = nil
        err?.close()
        err = nil
        explicitlyEnabled = nil
        started = false
        touched = false
    }

    /// The ring is complete enough to be polled.
    var isStartable: Bool { started && size != nil && addresses != nil && layout != nil }
}
