import VhostSystem
import Virtio

/// A switch port on one or more queues of a host interface through AF_XDP sockets
/// (`XDPSocket`: our redirect program, one UMEM shared by the queues' sockets, need_wakeup).
/// One poll thread serves all of the port's queues; frames leave through the first queue's
/// socket. Frames are copied between the UMEM and the poll thread's packet buffers; nothing
/// is allocated, locked or logged per packet, and the kernel is called only when it asked to
/// be woken.
///
/// XDP frames carry no virtio-net header: received frames come plain, and the port accepts
/// no GUEST_* offload (`acceptedOffloadFeatures` is 0), so the forwarder's
/// `OffloadResolver` segments and checksums guests' super-frames before they reach
/// `transmitBurst`. VLAN tags stay in the frame data (XDP runs before the stack strips
/// them), so frames are classified like any port's.
///
/// Threads as for `PacketSocketPort`: `receiveBurst`/`hasPendingFrames` belong to the poll
/// thread serving the port, `transmitBurst` to one thread at a time (a TransmitLock with
/// several poll threads), the rest to the control side. The counters are the kernel-socket
/// family (`PacketSocketPortStatistics`), so the API and /metrics show them as for af-packet.
public final class AfXdpPort: @unchecked Sendable {
    /// The first queue's socket: the transmit side, and the attachment's facts.
    public let socket: XDPSocket
    /// Every queue's socket, the first one first.
    public let sockets: [XDPSocket]
    public let statistics: PacketSocketPortStatistics
    /// The kernel's cumulative drop counters at the last `collectKernelStatistics`.
    private var lastKernel = XDPSocket.KernelStatistics()
    /// With several queues, an epoll set of their fds (readable when any of them is).
    private let wakeSet: Epoll?
    /// The sockets for the receive burst, unretained (`sockets` keeps them).
    @usableFromInline let receivers: UnsafeMutablePointer<Unmanaged<XDPSocket>>
    @usableFromInline let receiverCount: Int
    /// The queue the next receive burst starts with (fairness between the queues).
    @usableFromInline let nextReceiver: UnsafeMutablePointer<Int>

    public var interfaceName: String { socket.interfaceName }
    /// What a sleeping poll thread waits on: the socket's fd, or the epoll set of all of them.
    public let pollDescriptor: Int32

    init(sockets: [XDPSocket], statistics: PacketSocketPortStatistics) throws(SystemError) {
        socket = sockets[0]
        self.sockets = sockets
        self.statistics = statistics
        if sockets.count > 1 {
            let set = try Epoll()
            for (index, member) in sockets.enumerated() { try set.add(member.pollDescriptor, token: UInt64(index)) }
            wakeSet = set
            pollDescriptor = set.descriptor.rawValue
        } else {
            wakeSet = nil
            pollDescriptor = socket.pollDescriptor
        }
        receiverCount = sockets.count
        receivers = .allocate(capacity: sockets.count)
        for (index, member) in sockets.enumerated() { (receivers + index).initialize(to: Unmanaged.passUnretained(member)) }
        nextReceiver = .allocate(capacity: 1)
        nextReceiver.initialize(to: 0)
    }

    deinit {
        receivers.deinitialize(count: receiverCount)
        receivers.deallocate()
        nextReceiver.deallocate()
    }

    /// Opens a port on `interface` (calling thread's network namespace): attaches the XDP
    /// program and binds each queue (`configuration.queue` and the `queueCount - 1` after it)
    /// to a socket sharing one UMEM. Throws a `XDPSocket.Failure` that says what failed;
    /// nothing is left attached.
    public static func open(interface: String, configuration: XDPSocket.Configuration = XDPSocket.Configuration(),
                            statistics: PacketSocketPortStatistics = PacketSocketPortStatistics()) throws(XDPSocket.Failure) -> AfXdpPort {
        let first = try XDPSocket(interface: interface, configuration: configuration)
        var sockets = [first]
        for offset in 1..<max(1, configuration.queueCount) {
            sockets.append(try XDPSocket(sharingWith: first, queue: configuration.queue + UInt32(offset)))
        }
        do {
            return try AfXdpPort(sockets: sockets, statistics: statistics)
        } catch {
            throw XDPSocket.Failure(.failed, error)
        }
    }

    /// No GUEST_* offload: XDP frames have no virtio-net header.
    public var acceptedOffloadFeatures: UInt64 { 0 }

    // MARK: - Hot path

    /// Copies up to `maxCount` received frames into `buffers` (header zeroed); frames longer
    /// than their buffer, runts and descriptors outside the UMEM are dropped and counted.
    /// Returns the number filled.
    @inline(__always)
    public func receiveBurst(into buffers: UnsafeMutablePointer<PacketBuffer>, maxCount: Int) -> Int {
        var count = 0
        var burst = KernelPortBurstCounters()
        // Each queue in turn, from a different one each burst, until the burst is full.
        let start = nextReceiver.pointee
        nextReceiver.pointee = start &+ 1 == receiverCount ? 0 : start &+ 1
        var visited = 0
        var index = start
        while visited < receiverCount && count < maxCount {
            visited &+= 1
            // Unsafe: index < receiverCount, the array's size (wrapped below).
            let receiver = receivers[index]
            index = index &+ 1 == receiverCount ? 0 : index &+ 1
            // Unsafe (guaranteed ref): `sockets` keeps every receiver alive.
            receiver._withUnsafeGuaranteedRef { socket in
                receive(from: socket, into: buffers, maxCount: maxCount, count: &count, &burst)
            }
        }
        burst.receivedPackets = UInt64(count)
        statistics.recordReceived(burst)
        return count
    }

    /// One queue's share of a receive burst: frames into buffers[count...]; runts and
    /// the descriptors the socket found malformed count as malformed.
    @inline(__always)
    private func receive(from socket: XDPSocket, into buffers: UnsafeMutablePointer<PacketBuffer>, maxCount: Int, count: inout Int,
                         _ burst: inout KernelPortBurstCounters) {
        let result = socket.receive(maxCount: maxCount &- count) { data, length in
            // Unsafe: receive delivers at most `maxCount - count` frames, so count < maxCount,
            // the number of buffers the caller passed.
            let buffer = buffers + count
            if length < 14 {
                burst.receiveDropsMalformed &+= 1
                return false
            }
            if length > buffer.pointee.capacity {
                burst.receiveDropsTooLarge &+= 1
                return false
            }
            // Unsafe: length <= the buffer's capacity (checked above).
            buffer.pointee.data.copyMemory(from: data, byteCount: length)
            buffer.pointee.length = length
            buffer.pointee.header = VirtioNetHeader()
            burst.receivedBytes &+= UInt64(length)
            count &+= 1
            return true
        }
        burst.receiveDropsMalformed &+= UInt64(result.malformed)
    }

    /// Queues `count` frames on the TX ring and publishes them at once (one sendto when the
    /// kernel asks for a wake-up). Frames still asking for an offload (the forwarder resolves
    /// them first, so only a bug sends one) are dropped as unsupported. Returns how many
    /// went onto the ring; the rest are dropped and counted.
    @inline(__always)
    public func transmitBurst(_ buffers: UnsafePointer<PacketBuffer>, count: Int) -> Int {
        guard count > 0 else { return 0 }
        socket.reclaimCompleted()
        var sent = 0
        var burst = KernelPortBurstCounters()
        var index = 0
        let longest = socket.maxFrameLength
        while index < count {
            // Safe: index < count, the caller's buffer count. A copy: no references inside.
            let packet = buffers[index]
            index &+= 1
            if packet.header.flags & VirtioNetHeader.flagNeedsChecksum != 0 || packet.header.gsoType != VirtioNetHeader.gsoNone {
                burst.transmitDropsUnsupportedOffload &+= 1
                continue
            }
            let length = packet.length
            if length < 14 { burst.transmitDropsTooShort &+= 1; continue }
            if length > longest || length > packet.capacity { burst.transmitDropsTooLarge &+= 1; continue }
            guard socket.enqueue(packet.data, length: length) else {
                // Frames come back in order, so the rest of the burst would not fit either.
                burst.transmitDropsRingFull &+= UInt64(count &- index &+ 1)
                break
            }
            sent &+= 1
            burst.transmittedBytes &+= UInt64(length)
        }
        if socket.flush() != 0 { burst.transmitSendErrors = 1 }
        burst.transmittedPackets = UInt64(sent)
        statistics.recordTransmitted(burst)
        return sent
    }

    /// True when received frames wait on any queue: the last check before the poll thread sleeps.
    @inline(__always)
    public func hasPendingFrames() -> Bool {
        for index in 0..<receiverCount {
            // Unsafe: index < receiverCount; (guaranteed ref) `sockets` keeps it alive.
            if receivers[index]._withUnsafeGuaranteedRef({ $0.hasPendingFrames }) { return true }
        }
        return false
    }

    // MARK: - Control side

    public func linkState() -> PacketSocket.LinkState { socket.linkState() }

    public func linkIsUp() -> Bool { linkState() == .up }

    /// Adds the kernel's drops since the last call to `statistics` (frames dropped for a
    /// full RX ring or an empty fill ring show as receive ring drops). Control side only
    /// (housekeeping, one thread).
    public func collectKernelStatistics() {
        var now = XDPSocket.KernelStatistics()
        for member in sockets {
            guard let counts = try? member.kernelStatistics() else { return }
            now.receiveDrops &+= counts.receiveDrops
            now.invalidDescriptors &+= counts.invalidDescriptors
        }
        let drops = now.receiveDrops &- lastKernel.receiveDrops
        lastKernel = now
        statistics.recordKernel(drops: drops, freezes: 0)
    }
}
