import Glibc
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
    /// the kernel's vnet header: GSO super-frames from GRO and partial checksums come as
    /// they are, for the forwarder to pass on or finish; zeroed without vnet headers).
    /// Frames longer than their buffer are dropped and counted. Returns the number filled.
    @inline(__always)
    public func receiveBurst(into buffers: UnsafeMutablePointer<PacketBuffer>, maxCount: Int) -> Int {
        var count = 0
        var burst = KernelPortBurstCounters()
        let summary = socket.receive(maxCount: maxCount) { frame in
            // Unsafe: receive stops once `maxCount` frames were taken, so count < maxCount,
            // the number of buffers the caller passed.
            let buffer = buffers + count
            let length = frame.length
            if length > buffer.pointee.capacity {
                burst.receiveDropsTooLarge &+= 1
                return false
            }
            // Unsafe: length <= the buffer's capacity (checked above).
            frame.copy(to: buffer.pointee.data)
            buffer.pointee.length = length
            buffer.pointee.header = Self.header(of: frame)
            if frame.checksumPending { burst.receivedChecksumPending &+= 1 }
            burst.receivedBytes &+= UInt64(length)
            count &+= 1
            return true
        }
        burst.receivedPackets = UInt64(count)
        burst.receiveDropsTruncated = UInt64(summary.truncated)
        burst.receiveDropsMalformed = UInt64(summary.malformed)
        statistics.recordReceived(burst)
        return count
    }

    /// The offloads (VirtioNetFeature GUEST_* bits) a frame sent here may ask for: with
    /// PACKET_VNET_HDR the kernel completes partial checksums and segments GSO frames
    /// itself (or hands them on whole where the interface can). Super-frames need the
    /// large-frame socket; without vnet headers only plain frames go out.
    public var acceptedOffloadFeatures: UInt64 {
        guard socket.carriesVnetHeaders else { return 0 }
        guard socket.maxLargeFrameLength > 0 else { return VirtioNetFeature.guestCsum.mask }
        return Self.offloadsWithVnetHeaders
    }

    /// GUEST_CSUM | GUEST_TSO4 | GUEST_TSO6 | GUEST_ECN | GUEST_UFO.
    public static let offloadsWithVnetHeaders: UInt64 =
        VirtioNetFeature.guestCsum.mask | VirtioNetFeature.guestTso4.mask | VirtioNetFeature.guestTso6.mask
        | VirtioNetFeature.guestEcn.mask | VirtioNetFeature.guestUfo.mask

    /// Queues `count` frames on the transmit ring and hands them to the kernel with one
    /// sendto; a GSO frame flushes what is queued (keeping the order) and goes out alone
    /// through the large-frame socket. Offload headers are
    /// checked first: a malformed one drops its frame (transmitDropsUnsupportedOffload).
    /// Returns how many the kernel took; the rest are dropped and counted.
    @inline(__always)
    public func transmitBurst(_ buffers: UnsafePointer<PacketBuffer>, count: Int) -> Int {
        guard count > 0 else { return 0 }
        var totals = KernelPortBurstCounters()
        // Frames on the ring since its last flush.
        var queued = 0
        var queuedFrom = 0
        var index = 0
        let vnet = socket.carriesVnetHeaders
        while index < count {
            // Safe: index < count, the caller's buffer count. A copy: no references inside.
            let packet = buffers[index]
            index &+= 1
            guard let kernelHeader = Self.kernelHeader(for: packet.header, length: packet.length, vnetHeaders: vnet) else {
                totals.transmitDropsUnsupportedOffload &+= 1
                continue
            }
            guard packet.length <= packet.capacity else { totals.transmitDropsTooLarge &+= 1; continue }
            // GSO frames leave through the large-frame socket (the ring socket bypasses the
            // qdisc, and that path drops frames the kernel must segment).
            if kernelHeader.gsoType != VirtioNetHeader.gsoNone && socket.maxLargeFrameLength > 0 {
                flushRing(&queued, &totals, buffers, from: queuedFrom, to: index &- 1)
                queuedFrom = index
                let error = socket.sendLarge(packet.data, length: packet.length, vnetHeader: kernelHeader)
                if error == 0 {
                    totals.transmittedPackets &+= 1
                    totals.transmittedBytes &+= UInt64(packet.length)
                } else if error == EMSGSIZE {
                    totals.transmitDropsTooLarge &+= 1
                } else {
                    totals.transmitDropsKernel &+= 1
                    totals.transmitSendErrors &+= 1
                }
                continue
            }
            switch socket.enqueue(packet.data, length: packet.length, vnetHeader: kernelHeader) {
            case .queued:
                queued &+= 1
            case .badLength:
                if packet.length < 14 { totals.transmitDropsTooShort &+= 1 } else { totals.transmitDropsTooLarge &+= 1 }
            case .ringFull:
                // Slots free up in order, so the rest of the burst would not fit either.
                totals.transmitDropsRingFull &+= UInt64(count &- index &+ 1)
                index = count
            }
        }
        flushRing(&queued, &totals, buffers, from: queuedFrom, to: index)
        statistics.recordTransmitted(totals)
        return Int(truncatingIfNeeded: totals.transmittedPackets)
    }

    /// True when received frames wait: the last check before the poll thread sleeps.
    @inline(__always)
    public func hasPendingFrames() -> Bool { socket.hasPendingFrames }

    /// Hands the frames queued from buffers[from..<to] to the kernel and adds up what it took.
    @inline(__always)
    private func flushRing(_ queuedFrames: inout Int, _ totals: inout KernelPortBurstCounters,
                           _ buffers: UnsafePointer<PacketBuffer>, from: Int, to: Int) {
        let queued = queuedFrames
        guard queued > 0 else { return }
        queuedFrames = 0
        let result = socket.flush()
        if result.error != 0 { totals.transmitSendErrors &+= 1 }
        let taken = queued &- result.dropped
        totals.transmittedPackets &+= UInt64(taken)
        totals.transmitDropsKernel &+= UInt64(result.dropped)
        totals.transmittedBytes &+= bytesOfFirst(taken, queuedFrom: buffers, from: from, to: to)
    }

    /// The byte count of the first `taken` frames of buffers[from..<to] that went onto the
    /// ring, by replaying the same checks (the kernel takes a prefix of what was queued).
    @inline(__always)
    private func bytesOfFirst(_ taken: Int, queuedFrom buffers: UnsafePointer<PacketBuffer>, from: Int, to: Int) -> UInt64 {
        var bytes: UInt64 = 0
        var seen = 0
        var i = from
        let vnet = socket.carriesVnetHeaders
        let ringRoom = socket.maxTransmitLength
        while i < to && seen < taken {
            // Safe: from <= i < to <= the caller's count.
            let packet = buffers[i]
            i &+= 1
            guard Self.kernelHeader(for: packet.header, length: packet.length, vnetHeaders: vnet) != nil,
                  packet.length <= packet.capacity, packet.length >= 14, packet.length <= ringRoom,
                  packet.header.gsoType == VirtioNetHeader.gsoNone || socket.maxLargeFrameLength == 0 else { continue }
            bytes &+= UInt64(packet.length)
            seen &+= 1
        }
        return bytes
    }

    /// The vnet header to give the kernel for a frame of `length` bytes with `header`, or nil
    /// when the frame must be dropped: an offload request we cannot pass (no vnet headers)
    /// or a malformed one (UNTRUSTED-INPUT.md). GSO needs NEEDS_CSUM (the kernel's TSO/UFO
    /// paths need a partial checksum), a known type, a segment size and hdr_len within the
    /// frame; the checksum field must lie inside the frame. Flags other than NEEDS_CSUM
    /// (DATA_VALID is receive-side) are not passed on.
    @inline(__always)
    static func kernelHeader(for header: VirtioNetHeader, length: Int, vnetHeaders: Bool) -> PacketSocket.VnetHeaderFields? {
        let needsChecksum = header.flags & VirtioNetHeader.flagNeedsChecksum != 0
        let gsoType = header.gsoType
        if !needsChecksum && gsoType == VirtioNetHeader.gsoNone { return PacketSocket.VnetHeaderFields() }
        guard vnetHeaders else { return nil }
        if needsChecksum {
            // Int arithmetic on two UInt16 values and 2 cannot overflow.
            guard Int(header.checksumStart) &+ Int(header.checksumOffset) &+ 2 <= length else { return nil }
        }
        if gsoType != VirtioNetHeader.gsoNone {
            switch gsoType & ~VirtioNetHeader.gsoECN {
            case VirtioNetHeader.gsoTCPv4, VirtioNetHeader.gsoTCPv6, VirtioNetHeader.gsoUDP: break
            default: return nil
            }
            guard needsChecksum, header.gsoSize != 0, Int(header.gsoSize) < length,
                  Int(header.headerLength) <= length else { return nil }
        }
        return PacketSocket.VnetHeaderFields(
            flags: needsChecksum ? VirtioNetHeader.flagNeedsChecksum : 0, gsoType: gsoType,
            headerLength: gsoType == VirtioNetHeader.gsoNone ? 0 : header.headerLength,
            gsoSize: gsoType == VirtioNetHeader.gsoNone ? 0 : header.gsoSize,
            checksumStart: needsChecksum ? header.checksumStart : 0,
            checksumOffset: needsChecksum ? header.checksumOffset : 0)
    }

    /// The switch's header for a received frame: the kernel's vnet header as it is, with
    /// csum_start and hdr_len moved past a VLAN tag the kernel stripped and we re-insert.
    @inline(__always)
    static func header(of frame: PacketSocket.ReceivedFrame) -> VirtioNetHeader {
        guard let raw = frame.vnetHeader else { return VirtioNetHeader() }
        let k = PacketSocket.VnetHeaderFields(loadingFrom: raw)
        var header = VirtioNetHeader(flags: k.flags, gsoType: k.gsoType, headerLength: k.headerLength, gsoSize: k.gsoSize,
                                     checksumStart: k.checksumStart, checksumOffset: k.checksumOffset)
        if frame.vlanTag != 0 {
            if header.flags & VirtioNetHeader.flagNeedsChecksum != 0 { header.checksumStart &+= 4 }
            if header.headerLength != 0 { header.headerLength &+= 4 }
        }
        return header
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
