import Virtio

/// One port's rings as the poll loop sees them: a guest's split or packed virtqueue, a
/// kernel packet socket or an AF_XDP socket. Every per-packet path (receive burst, transmit burst, wake-ups,
/// pending work) switches on this enum once per burst, with unmanaged payloads: static
/// dispatch, no existential, no retain or release. A new kind of port is one case here,
/// its four answers below, and its own file (as `PacketSocketPort`).
enum PortDriver {
    // Unsafe (unmanaged): the snapshot holding the driver keeps the object alive (`owners`).
    case split(Unmanaged<SplitVirtqueue>)
    case packed(Unmanaged<PackedVirtqueue>)
    case packetSocket(Unmanaged<PacketSocketPort>)
    case afXdp(Unmanaged<AfXdpPort>)

    init(_ queue: Virtqueue) {
        switch queue {
        case .split(let ring): self = .split(Unmanaged.passUnretained(ring))
        case .packed(let ring): self = .packed(Unmanaged.passUnretained(ring))
        }
    }

    init(_ port: PacketSocketPort) { self = .packetSocket(Unmanaged.passUnretained(port)) }

    init(_ port: AfXdpPort) { self = .afXdp(Unmanaged.passUnretained(port)) }

    /// Frames from the port into `buffers` (a guest's transmit ring, the kernel's receive ring).
    @inline(__always)
    func receiveBurst(into buffers: UnsafeMutablePointer<PacketBuffer>, maxCount: Int) -> Int {
        // Unsafe (guaranteed refs): see the cases.
        switch self {
        case .split(let ring): ring._withUnsafeGuaranteedRef { $0.dequeueBurst(into: buffers, maxCount: maxCount) }
        case .packed(let ring): ring._withUnsafeGuaranteedRef { $0.dequeueBurst(into: buffers, maxCount: maxCount) }
        case .packetSocket(let port): port._withUnsafeGuaranteedRef { $0.receiveBurst(into: buffers, maxCount: maxCount) }
        case .afXdp(let port): port._withUnsafeGuaranteedRef { $0.receiveBurst(into: buffers, maxCount: maxCount) }
        }
    }

    /// Frames to the port (a guest's receive ring, the kernel's transmit ring); how many it took.
    @inline(__always)
    func transmitBurst(_ packets: UnsafeMutablePointer<PacketBuffer>, count: Int) -> Int {
        switch self {
        case .split(let ring): ring._withUnsafeGuaranteedRef { $0.enqueueBurst(packets, count: count) }
        case .packed(let ring): ring._withUnsafeGuaranteedRef { $0.enqueueBurst(packets, count: count) }
        case .packetSocket(let port): port._withUnsafeGuaranteedRef { $0.transmitBurst(packets, count: count) }
        case .afXdp(let port): port._withUnsafeGuaranteedRef { $0.transmitBurst(packets, count: count) }
        }
    }

    /// Asks the guest to kick (a poll thread going to sleep) or not to (polling). A kernel
    /// socket (packet or XDP) always wakes epoll: nothing to arm.
    @inline(__always)
    func armWakeups(_ enabled: Bool) {
        switch self {
        case .split(let ring): ring._withUnsafeGuaranteedRef { $0.setGuestNotifications(enabled: enabled) }
        case .packed(let ring): ring._withUnsafeGuaranteedRef { $0.setGuestNotifications(enabled: enabled) }
        case .packetSocket, .afXdp: break
        }
    }

    /// Counts the poll thread's cycles on one of the queue's bursts (rx-queue usage): a guest's
    /// transmit ring, or a kernel port's socket.
    @inline(__always)
    func recordBusyCycles(_ cycles: UInt64) {
        switch self {
        case .split(let ring): ring._withUnsafeGuaranteedRef { $0.settings.statistics.recordBusyCycles(cycles) }
        case .packed(let ring): ring._withUnsafeGuaranteedRef { $0.settings.statistics.recordBusyCycles(cycles) }
        case .packetSocket(let port): port._withUnsafeGuaranteedRef { $0.statistics.recordBusyCycles(cycles) }
        case .afXdp(let port): port._withUnsafeGuaranteedRef { $0.statistics.recordBusyCycles(cycles) }
        }
    }

    /// Work is waiting that a sleeping thread would not be woken for.
    @inline(__always)
    var hasPending: Bool {
        switch self {
        case .split(let ring): ring._withUnsafeGuaranteedRef { $0.hasAvailableBuffers() }
        case .packed(let ring): ring._withUnsafeGuaranteedRef { $0.hasAvailableBuffers() }
        case .packetSocket(let port): port._withUnsafeGuaranteedRef { $0.hasPendingFrames() }
        case .afXdp(let port): port._withUnsafeGuaranteedRef { $0.hasPendingFrames() }
        }
    }
}
