import VhostSystem
import Virtio

/// A switch port on a host interface (physical NIC, veth, tap in host mode) through an
/// AF_PACKET socket with mmap'd rings. Frames are copied between the rings and the poll
/// thread's packet buffers; nothing is allocated, locked or logged per packet.
///
/// Threads: `receiveBurst` and `hasPendingFrames` belong to the one poll thread that
/// polls the port; `transmitBurst` to one thread at a time (with several poll threads the
/// switch puts a TransmitLock around it, as for a shared guest receive ring); `linkState`,
/// `collectKernelStatistics` and `reopened` are for the control side.
///
/// The socket is fixed for the object's lifetime. When the interface is deleted and
/// re-created (new ifindex) the control side builds a new port with `reopened()`, which
/// keeps the statistics, and swaps it in through the switch's snapshot mechanism; the old
/// port (and its socket and rings) is released after the grace period.
public final class PacketSocketPort: @unchecked Sendable {
    public let socket: PacketSocket
    public let statistics: PacketSocketPortStatistics

    public var interfaceName: String { socket.interfaceName }
    public var interfaceIndex: Int32 { socket.interfaceIndex }

    /// The socket's fd, for the poll thread's epoll while it sleeps (edge-triggered is
    /// fine: the kernel signals each handed-over receive block).
    public let pollDescriptor: Int32

    init(socket: PacketSocket, statistics: PacketSocketPortStatistics) {
        self.socket = socket
        self.statistics = statistics
        pollDescriptor = socket.pollDescriptor
    }

    /// Opens a port on `interface` in the calling thread's network namespace.
    public static func open(interface: String, configuration: PacketSocket.Configuration = PacketSocket.Configuration(),
                            statistics: PacketSocketPortStatistics = PacketSocketPortStatistics()) throws(SystemError) -> PacketSocketPort {
        PacketSocketPort(socket: try PacketSocket(interface: interface, configuration: configuration), statistics: statistics)
    }

    /// A new port on the same interface name (and configuration) sharing these
    /// statistics: for an interface that was deleted and re-created. Control side.
    public func reopened() throws(SystemError) -> PacketSocketPort {
        try Self.open(interface: socket.interfaceName, configuration: socket.configuration, statistics: statistics)
    }

    // MARK: - Hot path

    /// Copies up to `maxCount` received frames into `buffers` (each `length` set, header
    /// zeroed: AF_PACKET frames carry no offload metadata). Frames longer than their
    /// buffer are dropped and counted. Returns the number filled.
    @inline(__always)
    public func receiveBurst(into buffers: UnsafeMutablePointer<PacketBuffer>, maxCount: Int) -> Int {
        var count = 0
        var bytes: UInt64 = 0
        var tooLarge: UInt64 = 0
        var checksumPending: UInt64 = 0
        let summary = socket.receive(maxCount: maxCount) { frame in
            // Unsafe: receive stops once `maxCount` frames were taken, so count < maxCount,
            // the number of buffers the caller passed.
            let buffer = buffers + count
            let length = frame.length
            if length > buffer.pointee.capacity {
                tooLarge &+= 1
                return false
            }
            // Unsafe: length <= the buffer's capacity (checked above).
            frame.copy(to: buffer.pointee.data)
            buffer.pointee.length = length
            buffer.pointee.header = VirtioNetHeader()
            if frame.checksumPending { checksumPending &+= 1 }
            bytes &+= UInt64(length)
            count &+= 1
            return true
        }
        if count != 0 || tooLarge != 0 || summary.truncated != 0 || summary.malformed != 0 {
            let s = statistics
            PacketSocketPortStatistics.add(s.receivedPackets, UInt64(count))
            PacketSocketPortStatistics.add(s.receivedBytes, bytes)
            PacketSocketPortStatistics.add(s.receiveDropsTooLarge, tooLarge)
            PacketSocketPortStatistics.add(s.receiveDropsTruncated, UInt64(summary.truncated))
            PacketSocketPortStatistics.add(s.receiveDropsMalformed, UInt64(summary.malformed))
            PacketSocketPortStatistics.add(s.receivedChecksumPending, checksumPending)
        }
        return count
    }

    /// Queues `count` frames on the transmit ring and hands them to the kernel with one
    /// sendto. Returns how many the kernel took; the rest are dropped and counted.
    @inline(__always)
    public func transmitBurst(_ buffers: UnsafePointer<PacketBuffer>, count: Int) -> Int {
        guard count > 0 else { return 0 }
        var queued = 0
        var bytes: UInt64 = 0
        var tooLarge: UInt64 = 0
        var tooShort: UInt64 = 0
        var offload: UInt64 = 0
        var ringFull: UInt64 = 0
        var index = 0
        while index < count {
            // Safe: index < count, the caller's buffer count. A copy: no references inside.
            let packet = buffers[index]
            index &+= 1
            guard Self.isPlain(packet.header) else { offload &+= 1; continue }
            guard packet.length <= packet.capacity else { tooLarge &+= 1; continue }
            switch socket.enqueue(packet.data, length: packet.length) {
            case .queued:
                queued &+= 1
                bytes &+= UInt64(packet.length)
            case .badLength:
                if packet.length < 14 { tooShort &+= 1 } else { tooLarge &+= 1 }
            case .ringFull:
                // Slots free up in order, so the rest of the burst would not fit either.
                ringFull &+= UInt64(count &- index &+ 1)
                index = count
            }
        }
        var sent = queued
        var kernelDrops: UInt64 = 0
        var sendErrors: UInt64 = 0
        if queued > 0 {
            let result = socket.flush()
            if result.error != 0 { sendErrors = 1 }
            if result.dropped > 0 {
                sent = queued &- result.dropped
                kernelDrops = UInt64(result.dropped)
                bytes = bytesOfFirst(sent, queuedFrom: buffers, count: count)
            }
        }
        let s = statistics
        PacketSocketPortStatistics.add(s.transmittedPackets, UInt64(sent))
        PacketSocketPortStatistics.add(s.transmittedBytes, bytes)
        PacketSocketPortStatistics.add(s.transmitDropsTooLarge, tooLarge)
        PacketSocketPortStatistics.add(s.transmitDropsTooShort, tooShort)
        PacketSocketPortStatistics.add(s.transmitDropsUnsupportedOffload, offload)
        PacketSocketPortStatistics.add(s.transmitDropsRingFull, ringFull)
        PacketSocketPortStatistics.add(s.transmitDropsKernel, kernelDrops)
        PacketSocketPortStatistics.add(s.transmitSendErrors, sendErrors)
        return sent
    }

    /// True when received frames wait: the last check before the poll thread sleeps.
    @inline(__always)
    public func hasPendingFrames() -> Bool { socket.hasPendingFrames }

    /// Without PACKET_VNET_HDR the kernel cannot be asked to finish a checksum or segment a
    /// frame, so only frames without offload requests can go out.
    @inline(__always)
    static func isPlain(_ header: VirtioNetHeader) -> Bool {
        header.flags & VirtioNetHeader.flagNeedsChecksum == 0 && header.gsoType == VirtioNetHeader.gsoNone
    }

    /// The byte count of the first `sent` frames that were queued: only when the kernel
    /// took fewer than queued (rare), by replaying the same checks.
    private func bytesOfFirst(_ sent: Int, queuedFrom buffers: UnsafePointer<PacketBuffer>, count: Int) -> UInt64 {
        var bytes: UInt64 = 0
        var seen = 0
        for i in 0..<count where seen < sent {
            let packet = buffers[i]
            guard Self.isPlain(packet.header), packet.length <= packet.capacity,
                  packet.length >= 14, packet.length <= socket.maxTransmitLength else { continue }
            bytes &+= UInt64(packet.length)
            seen &+= 1
        }
        return bytes
    }

    // MARK: - Control side

    /// Up means IFF_UP and IFF_RUNNING (carrier) on the interface this socket is bound to.
    public func linkIsUp() -> Bool { socket.linkIsUp() }

    /// `.replaced` or `.missing` mean this socket will never pass traffic again: build a
    /// new port with `reopened()` once the name resolves again.
    public func linkState() -> PacketSocket.LinkState { socket.linkState() }

    /// Reads the kernel's receive-ring drop counters (they clear on read) into `statistics`.
    /// Control side only; call it before discarding a port swapped out by `reopened()`.
    public func collectKernelStatistics() {
        if let kernel = try? socket.kernelStatistics() { statistics.record(kernel) }
    }
}
