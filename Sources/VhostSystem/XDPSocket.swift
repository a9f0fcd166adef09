import CVhostShims
import Glibc

/// An AF_XDP socket on one queue of a host interface. The sockets of an interface share one
/// `XDPAttachment`: one UMEM (a slot per queue), and our own XDP program attached through a
/// bpf link, a redirect of every frame of a queue to that queue's socket
/// (`vhost_shims_xdp_program_load`). The first socket (`init(interface:configuration:)`)
/// registers the UMEM; the others (`init(sharingWith:queue:)`) bind sharing it, each with its
/// own fill and completion rings. See the kernel's Documentation/networking/af_xdp.rst.
///
/// A socket's UMEM slot is split in two: receive frames, all handed to the kernel on the fill
/// ring and handed back as soon as the receive burst has copied them out; transmit frames, on
/// a free stack, filled by `enqueue`, given to the kernel on the TX ring by `flush` and taken
/// back from the completion ring. No system call per packet: the kernel is woken (recvfrom,
/// sendto) only when it set XDP_RING_NEED_WAKEUP on the fill or TX ring.
///
/// Threading: `receive`/`hasPendingFrames` belong to one thread (the poll thread serving
/// the port: rx and fill ring), `enqueue`/`flush` to one thread at a time (TX and
/// completion ring). The link queries and `kernelStatistics` are for the control side.
///
/// Everything is released by deinit: the last socket of an interface closes the link fd,
/// which detaches the program, so a failure half way through set-up, a deleted port or a
/// crashed daemon leaves nothing on the interface.
///
/// Why one long file: binding (UMEM registration or sharing, the four rings' offsets from
/// XDP_MMAP_OFFSETS and their mappings) and the ring walks on the hot path share the same
/// private ring layout; split apart, each part would need the others' offsets.
public final class XDPSocket: @unchecked Sendable {
    /// How the XDP program is attached (the port spec's `mode`).
    public enum AttachMode: String, Sendable, CaseIterable {
        /// In the driver (XDP_FLAGS_DRV_MODE); zero-copy when the driver supports it.
        case native
        /// In the generic receive path (XDP_FLAGS_SKB_MODE): any interface, always copy.
        case generic
        /// Native when the driver has it, else generic.
        case auto
    }

    public struct Configuration: Sendable, Equatable {
        /// The first queue (the first socket's).
        public var queue: UInt32 = 0
        /// Queues queue..<queue + queueCount get a socket each, sharing the UMEM (1...64).
        public var queueCount = 1
        public var mode: AttachMode = .auto
        /// UMEM chunk size: one frame each (a page: MTU 1500 frames and the kernel's
        /// XDP headroom fit).
        public var frameSize = 4096
        /// Entries of each of the four rings; the UMEM has twice as many frames (half for
        /// receive, half for transmit). A power of two.
        public var ringSize = 2048

        public init(queue: UInt32 = 0, queueCount: Int = 1, mode: AttachMode = .auto) {
            self.queue = queue
            self.queueCount = queueCount
            self.mode = mode
        }
    }

    /// Producer/consumer positions the socket's user owns (the kernel's are in the rings),
    /// in manually allocated memory so the hot path pays no exclusivity checks or ARC.
    @usableFromInline
    struct Cursor {
        @usableFromInline var receiveConsumer: UInt32 = 0
        @usableFromInline var fillProducer: UInt32 = 0
        @usableFromInline var transmitProducer: UInt32 = 0
        /// TX ring entries written since the last flush (not yet published).
        @usableFromInline var transmitQueued: UInt32 = 0
        @usableFromInline var completionConsumer: UInt32 = 0
        /// Transmit frames on the free stack.
        @usableFromInline var freeFrames = 0
    }

    /// One mapped ring: the kernel's producer, consumer and flags words and its entries.
    @usableFromInline
    struct Ring {
        @usableFromInline let producer: UnsafeMutableRawPointer
        @usableFromInline let consumer: UnsafeMutableRawPointer
        @usableFromInline let flags: UnsafeMutableRawPointer
        @usableFromInline let entries: UnsafeMutableRawPointer
        @usableFromInline let mask: UInt32

        /// The kernel asked to be woken (XDP_USE_NEED_WAKEUP).
        @inlinable @inline(__always)
        var needsWakeup: Bool { vhost_shims_load_relaxed_u32(flags) & UInt32(XDP_RING_NEED_WAKEUP) != 0 }
    }

    /// XDP_STATISTICS: cumulative since the socket was bound.
    public struct KernelStatistics: Sendable, Equatable {
        /// Frames dropped for want of a fill-ring frame or RX-ring slot, or for other reasons.
        public var receiveDrops: UInt64 = 0
        /// Descriptors the kernel refused (receive and transmit).
        public var invalidDescriptors: UInt64 = 0

        public init() {}
    }

    public var interfaceName: String { attachment.interfaceName }
    public var interfaceIndex: Int32 { attachment.interfaceIndex }
    public var mtu: Int { attachment.mtu }
    /// The mode the program was attached in (native or generic, never auto).
    public var attachedMode: AttachMode { attachment.mode }
    /// The queue this socket serves.
    public let queue: UInt32
    /// The driver moves frames in and out of the UMEM itself (XDP_ZEROCOPY took).
    public let zeroCopy: Bool
    /// The longest frame `enqueue` accepts and `receive` delivers.
    public let maxFrameLength: Int

    let attachment: XDPAttachment
    private let socketDescriptor: FileDescriptor
    private let ringMappings: [MemoryMapping]
    @usableFromInline let rawDescriptor: Int32
    @usableFromInline let umemBase: UnsafeMutableRawPointer
    @usableFromInline let frameSize: UInt64
    /// This socket's receive chunks are [receiveStart, transmitStart), its transmit chunks
    /// [transmitStart, slotEnd) (UMEM offsets).
    @usableFromInline let receiveStart: UInt64
    @usableFromInline let transmitStart: UInt64
    @usableFromInline let slotEnd: UInt64
    @usableFromInline let receiveRing: Ring
    @usableFromInline let fillRing: Ring
    @usableFromInline let transmitRing: Ring
    @usableFromInline let completionRing: Ring
    @usableFromInline let ringSize: UInt32
    /// Transmit frames' UMEM addresses not in the kernel's hands.
    @usableFromInline let freeStack: UnsafeMutablePointer<UInt64>
    @usableFromInline let cursor: UnsafeMutablePointer<Cursor>

    /// The socket's fd, for epoll while the poll thread sleeps (readable when the RX ring
    /// has frames).
    public var pollDescriptor: Int32 { rawDescriptor }

    /// The first socket of `interface` (in the calling thread's network namespace): makes the
    /// UMEM, attaches the program in the configured mode, binds to `configuration.queue`
    /// (zero-copy when native and the driver supports it) and hands the receive frames to the
    /// kernel. Throws `XDPSocket.Failure` with what went wrong; nothing stays behind.
    public convenience init(interface: String, configuration: Configuration = Configuration()) throws(Failure) {
        try self.init(attachment: try XDPAttachment(interface: interface, configuration: configuration), queue: configuration.queue)
    }

    /// Another queue of `first`'s interface, in the UMEM slot set aside for it
    /// (`configuration.queueCount`), bound sharing `first`'s UMEM and in its copy mode.
    public convenience init(sharingWith first: XDPSocket, queue: UInt32) throws(Failure) {
        try self.init(attachment: first.attachment, queue: queue)
    }

    private init(attachment: XDPAttachment, queue: UInt32) throws(Failure) {
        let configuration = attachment.configuration
        guard queue >= configuration.queue, Int(queue - configuration.queue) < configuration.queueCount else {
            throw Failure(.invalidConfiguration, SystemError("queue \(queue) outside the UMEM's slots", errno: EINVAL))
        }
        let slot = Int(queue - configuration.queue)
        let size = configuration.ringSize
        let first = attachment.registrationDescriptor < 0
        do {
            let socketType = Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
            socketDescriptor = FileDescriptor(adopting: try systemCall("socket(AF_XDP)") { socket(AF_XDP, socketType, 0) })
        } catch {
            throw Failure(error.errno == EAFNOSUPPORT ? .unsupported : error.permissionDenied ? .permissionDenied : .failed, error)
        }
        let raw = socketDescriptor.rawValue
        do {
            if first {
                var registration = xdp_umem_reg()
                registration.addr = UInt64(UInt(bitPattern: attachment.umem.base))
                registration.len = UInt64(attachment.umem.length)
                registration.chunk_size = UInt32(configuration.frameSize)
                registration.headroom = 0
                try Self.setOption(raw, XDP_UMEM_REG, &registration, "XDP_UMEM_REG")
            }
            // Every socket has its own fill and completion rings (shared UMEM, other queues).
            var entries = UInt32(size)
            try Self.setOption(raw, XDP_UMEM_FILL_RING, &entries, "XDP_UMEM_FILL_RING")
            try Self.setOption(raw, XDP_UMEM_COMPLETION_RING, &entries, "XDP_UMEM_COMPLETION_RING")
            try Self.setOption(raw, XDP_RX_RING, &entries, "XDP_RX_RING")
            try Self.setOption(raw, XDP_TX_RING, &entries, "XDP_TX_RING")

            var offsets = xdp_mmap_offsets()
            var length = socklen_t(MemoryLayout<xdp_mmap_offsets>.size)
            try systemCall("getsockopt(XDP_MMAP_OFFSETS)") { getsockopt(raw, SOL_XDP, XDP_MMAP_OFFSETS, &offsets, &length) }
            let descriptorSize = MemoryLayout<xdp_desc>.size
            let addressSize = MemoryLayout<UInt64>.size
            let rx = try Self.mapRing(socketDescriptor, offsets.rx, entrySize: descriptorSize, size: size, pageOffset: UInt64(XDP_PGOFF_RX_RING))
            let tx = try Self.mapRing(socketDescriptor, offsets.tx, entrySize: descriptorSize, size: size, pageOffset: UInt64(XDP_PGOFF_TX_RING))
            let fill = try Self.mapRing(socketDescriptor, offsets.fr, entrySize: addressSize, size: size, pageOffset: XDP_UMEM_PGOFF_FILL_RING)
            let completion = try Self.mapRing(socketDescriptor, offsets.cr, entrySize: addressSize, size: size, pageOffset: XDP_UMEM_PGOFF_COMPLETION_RING)
            ringMappings = [rx.mapping, tx.mapping, fill.mapping, completion.mapping]
            receiveRing = rx.ring
            transmitRing = tx.ring
            fillRing = fill.ring
            completionRing = completion.ring
        } catch {
            throw Failure(error.permissionDenied ? .permissionDenied : .failed, error)
        }

        // The first socket: zero-copy needs the driver's own XDP; copy mode otherwise (and as
        // the fallback). The others take the first's mode (the kernel refuses flags with
        // XDP_SHARED_UMEM).
        let interface = attachment.interfaceName
        var zeroCopy = false
        var bindError: SystemError?
        if first {
            bindError = SystemError("bind(AF_XDP)", errno: EINVAL)
            for copyFlag in attachment.mode == .native ? [XDP_ZEROCOPY, XDP_COPY] : [XDP_COPY] {
                do {
                    try Self.bind(raw, index: attachment.interfaceIndex, queue: queue, flags: UInt16(copyFlag | XDP_USE_NEED_WAKEUP))
                    bindError = nil
                    zeroCopy = copyFlag == XDP_ZEROCOPY
                    break
                } catch {
                    bindError = error
                }
            }
        } else {
            do {
                try Self.bind(raw, index: attachment.interfaceIndex, queue: queue, flags: UInt16(XDP_SHARED_UMEM),
                              sharing: attachment.registrationDescriptor)
                zeroCopy = Self.isZeroCopy(raw)
            } catch {
                bindError = error
            }
        }
        if let bindError {
            // EINVAL for a queue the interface does not have.
            throw Failure(bindError.errno == EINVAL ? .noSuchQueue : .failed,
                          SystemError("bind(AF_XDP, \(interface) queue \(queue))", errno: bindError.errno))
        }
        if first { attachment.registrationDescriptor = raw }
        self.zeroCopy = zeroCopy
        self.attachment = attachment
        self.queue = queue
        rawDescriptor = raw
        umemBase = attachment.umem.base
        frameSize = UInt64(configuration.frameSize)
        ringSize = UInt32(size)
        receiveStart = UInt64(slot &* 2 &* size) &* frameSize
        transmitStart = receiveStart &+ UInt64(size) &* frameSize
        slotEnd = transmitStart &+ UInt64(size) &* frameSize
        maxFrameLength = min(attachment.mtu + 18, configuration.frameSize - 256)
        cursor = .allocate(capacity: 1)
        cursor.initialize(to: Cursor())
        freeStack = .allocate(capacity: size)

        // Receive frames are the first half of the slot, all on the fill ring; transmit
        // frames the second half, all free.
        for i in 0..<size {
            // Unsafe: i < size, the fill ring's entry count (8 bytes each).
            fillRing.entries.storeBytes(of: receiveStart &+ UInt64(i) &* frameSize, toByteOffset: i &* 8, as: UInt64.self)
            // Unsafe: i < size, the stack's capacity.
            freeStack[i] = transmitStart &+ UInt64(i) &* frameSize
        }
        cursor.pointee.freeFrames = size
        cursor.pointee.fillProducer = UInt32(size)
        vhost_shims_store_release_u32(fillRing.producer, UInt32(size))

        // Only now can the program find the socket: frames before this went to the stack.
        let map = attachment.map.rawValue
        do {
            try systemCall("bpf(BPF_MAP_UPDATE_ELEM, queue \(queue))") { vhost_shims_xdp_map_set(map, queue, raw) }
        } catch {
            throw Failure(.failed, error)
        }
    }

    deinit {
        cursor.deinitialize(count: 1)
        cursor.deallocate()
        freeStack.deallocate()
    }

    // MARK: - Receive (one thread)

    /// Calls `body` with up to `maxCount` received frames (data, length), then hands their
    /// frames back to the kernel on the fill ring. `body` copies the frame out; it returns
    /// false for a frame it dropped. Descriptors outside the UMEM are skipped and counted
    /// in `malformed`. Returns (frames delivered, malformed).
    @inlinable @inline(__always)
    public func receive(maxCount: Int, _ body: (UnsafeRawPointer, Int) -> Bool) -> (delivered: Int, malformed: Int) {
        let consumer = cursor.pointee.receiveConsumer
        let available = vhost_shims_load_acquire_u32(receiveRing.producer) &- consumer
        let count = min(Int(available), maxCount)
        guard count > 0 else { return (0, 0) }
        var delivered = 0
        var malformed = 0
        var fill = cursor.pointee.fillProducer
        let fillMask = fillRing.mask
        let chunkMask = ~(frameSize &- 1)
        let receiveStart = receiveStart
        let receiveEnd = transmitStart
        for i in 0..<UInt32(count) {
            // Unsafe: the slot index is masked to the ring's size; each entry is an xdp_desc.
            let entry = receiveRing.entries + Int((consumer &+ i) & receiveRing.mask) &* MemoryLayout<xdp_desc>.size
            let address = entry.load(as: UInt64.self)
            let length = entry.load(fromByteOffset: 8, as: UInt32.self)
            let chunk = address & chunkMask
            // The kernel is trusted more than a guest, but a frame must lie inside one of
            // the receive chunks before we read it.
            guard chunk >= receiveStart, chunk < receiveEnd, address &- chunk &+ UInt64(length) <= frameSize else {
                malformed &+= 1
                continue
            }
            // Unsafe: address + length lies inside this socket's receive chunks (checked above).
            if body(umemBase + Int(address), Int(length)) { delivered &+= 1 }
            // Unsafe: the slot index is masked to the fill ring's size.
            fillRing.entries.storeBytes(of: chunk, toByteOffset: Int(fill & fillMask) &* 8, as: UInt64.self)
            fill &+= 1
        }
        // Frames copied out: give their chunks back, then free the RX slots.
        vhost_shims_store_release_u32(fillRing.producer, fill)
        cursor.pointee.fillProducer = fill
        vhost_shims_store_release_u32(receiveRing.consumer, consumer &+ UInt32(count))
        cursor.pointee.receiveConsumer = consumer &+ UInt32(count)
        if fillRing.needsWakeup {
            // The driver sleeps until told that the fill ring has frames again.
            _ = recvfrom(rawDescriptor, nil, 0, Int32(MSG_DONTWAIT), nil, nil)
        }
        return (delivered, malformed)
    }

    /// True when the RX ring holds frames: the last check before the poll thread sleeps.
    @inlinable
    public var hasPendingFrames: Bool {
        vhost_shims_load_acquire_u32(receiveRing.producer) != cursor.pointee.receiveConsumer
    }

    // MARK: - Transmit (one thread at a time)

    /// Copies a frame into a free transmit frame and writes its TX descriptor (published by
    /// `flush`). False when every transmit frame is still with the kernel or `length` is
    /// outside 14...maxFrameLength (the caller tells which).
    @inlinable @inline(__always)
    public func enqueue(_ data: UnsafeRawPointer, length: Int) -> Bool {
        guard length >= 14, length <= maxFrameLength else { return false }
        var free = cursor.pointee.freeFrames
        if free == 0 {
            reclaimCompleted()
            free = cursor.pointee.freeFrames
            if free == 0 { return false }
        }
        free &-= 1
        // Unsafe: free < the stack's capacity (it counts the frames on the stack).
        let address = freeStack[free]
        cursor.pointee.freeFrames = free
        // Unsafe: address is a transmit chunk's start, length <= maxFrameLength < frameSize.
        (umemBase + Int(address)).copyMemory(from: data, byteCount: length)
        let slot = cursor.pointee.transmitProducer &+ cursor.pointee.transmitQueued
        // Unsafe: the slot index is masked to the ring's size; each entry is an xdp_desc.
        // The TX ring has as many slots as there are transmit frames, so a free frame means
        // a free slot.
        let entry = transmitRing.entries + Int(slot & transmitRing.mask) &* MemoryLayout<xdp_desc>.size
        entry.storeBytes(of: address, as: UInt64.self)
        entry.storeBytes(of: UInt32(length), toByteOffset: 8, as: UInt32.self)
        entry.storeBytes(of: UInt32(0), toByteOffset: 12, as: UInt32.self)
        cursor.pointee.transmitQueued &+= 1
        return true
    }

    /// Publishes the queued TX descriptors and, when the kernel asked for it, wakes it with
    /// sendto. Returns 0 or the errno of a failed sendto (EAGAIN, EBUSY and ENOBUFS are not
    /// failures: the frames stay queued and go with the next wake-up).
    @inlinable @inline(__always)
    public func flush() -> Int32 {
        let queued = cursor.pointee.transmitQueued
        if queued != 0 {
            let producer = cursor.pointee.transmitProducer &+ queued
            vhost_shims_store_release_u32(transmitRing.producer, producer)
            cursor.pointee.transmitProducer = producer
            cursor.pointee.transmitQueued = 0
        }
        guard transmitRing.needsWakeup else { return 0 }
        if sendto(rawDescriptor, nil, 0, Int32(MSG_DONTWAIT), nil, 0) >= 0 { return 0 }
        let error = vhost_shims_errno()
        return error == EAGAIN || error == EBUSY || error == ENOBUFS ? 0 : error
    }

    /// Takes the frames the kernel finished sending back onto the free stack.
    @inlinable @inline(__always)
    public func reclaimCompleted() {
        let consumer = cursor.pointee.completionConsumer
        let ready = vhost_shims_load_acquire_u32(completionRing.producer) &- consumer
        guard ready != 0 else { return }
        var free = cursor.pointee.freeFrames
        let chunkMask = ~(frameSize &- 1)
        let transmitStart = transmitStart
        let slotEnd = slotEnd
        for i in 0..<ready {
            // Unsafe: the slot index is masked to the ring's size (8-byte entries).
            let address = completionRing.entries.load(fromByteOffset: Int((consumer &+ i) & completionRing.mask) &* 8, as: UInt64.self)
            let chunk = address & chunkMask
            // Only our transmit chunks, and never more than the stack holds.
            guard chunk >= transmitStart, chunk < slotEnd, free < Int(ringSize) else { continue }
            // Unsafe: free < ringSize, the stack's capacity.
            freeStack[free] = chunk
            free &+= 1
        }
        cursor.pointee.freeFrames = free
        vhost_shims_store_release_u32(completionRing.consumer, consumer &+ ready)
        cursor.pointee.completionConsumer = consumer &+ ready
    }

    // MARK: - Control side

    /// Up (IFF_UP and IFF_RUNNING), down, replaced or missing, as for a packet socket.
    public func linkState() -> PacketSocket.LinkState {
        NetworkInterface.linkState(named: interfaceName, index: interfaceIndex)
    }

    /// XDP_STATISTICS (cumulative).
    public func kernelStatistics() throws(SystemError) -> KernelStatistics {
        var stats = xdp_statistics()
        var length = socklen_t(MemoryLayout<xdp_statistics>.size)
        try systemCall("getsockopt(XDP_STATISTICS)") { getsockopt(rawDescriptor, SOL_XDP, XDP_STATISTICS, &stats, &length) }
        var result = KernelStatistics()
        result.receiveDrops = stats.rx_dropped &+ stats.rx_ring_full
        result.invalidDescriptors = stats.rx_invalid_descs &+ stats.tx_invalid_descs
        return result
    }

    // MARK: - Set-up helpers

    /// XDP_OPTIONS: the socket runs zero-copy.
    private static func isZeroCopy(_ fd: Int32) -> Bool {
        var options = xdp_options()
        var length = socklen_t(MemoryLayout<xdp_options>.size)
        guard getsockopt(fd, SOL_XDP, XDP_OPTIONS, &options, &length) == 0 else { return false }
        return options.flags & UInt32(XDP_OPTIONS_ZEROCOPY) != 0
    }

    /// setsockopt(SOL_XDP) with a plain C struct or integer (`BitwiseCopyable`: its bytes are the value).
    private static func setOption<T: BitwiseCopyable>(_ fd: Int32, _ option: Int32, _ value: inout T, _ name: String) throws(SystemError) {
        try systemCall("setsockopt(\(name))") {
            // Unsafe: setsockopt reads exactly MemoryLayout<T>.size bytes of `value`.
            withUnsafeBytes(of: &value) { setsockopt(fd, SOL_XDP, option, $0.baseAddress, socklen_t($0.count)) }
        }
    }

    private static func mapRing(_ fd: FileDescriptor, _ offset: xdp_ring_offset, entrySize: Int, size: Int,
                                pageOffset: UInt64) throws(SystemError) -> (ring: Ring, mapping: MemoryMapping) {
        let mapping = try MemoryMapping(descriptor: fd, length: Int(offset.desc) + size * entrySize, offset: pageOffset,
                                        flags: MAP_SHARED | MAP_POPULATE)
        // Unsafe: the kernel's offsets lie inside the mapping it sized with them.
        let ring = Ring(producer: mapping.base + Int(offset.producer), consumer: mapping.base + Int(offset.consumer),
                        flags: mapping.base + Int(offset.flags), entries: mapping.base + Int(offset.desc), mask: UInt32(size - 1))
        return (ring, mapping)
    }

    private static func bind(_ fd: Int32, index: Int32, queue: UInt32, flags: UInt16, sharing umemOwner: Int32 = 0) throws(SystemError) {
        var address = sockaddr_xdp()
        address.sxdp_family = UInt16(AF_XDP)
        address.sxdp_flags = flags
        address.sxdp_ifindex = UInt32(bitPattern: index)
        address.sxdp_queue_id = queue
        address.sxdp_shared_umem_fd = UInt32(bitPattern: umemOwner)
        try systemCall("bind(AF_XDP)") {
            // Unsafe: bind reads exactly sizeof(sockaddr_xdp) bytes of `address`.
            withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(fd, $0, socklen_t(MemoryLayout<sockaddr_xdp>.size)) }
            }
        }
    }
}
