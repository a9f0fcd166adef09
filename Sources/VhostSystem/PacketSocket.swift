import CVhostShims
import Glibc

/// An AF_PACKET socket bound to one host interface with memory-mapped rings: a TPACKET_V3
/// receive ring (variable-size frames in blocks the kernel hands over whole) and a
/// transmit ring of fixed-size TPACKET_V3 frames (kernel 4.11+), both in one mapping.
/// See the kernel's Documentation/networking/packet_mmap.rst.
///
/// Threading: `receive`/`hasPendingFrames` belong to one thread (the poll thread serving
/// the port), `enqueue`/`flush` to one thread at a time (a transmitting poll thread, or
/// several behind a lock). The link queries and `kernelStatistics` are for the control side.
///
/// The kernel is trusted more than a guest, but every offset read from the ring is still
/// bounded against its block before use, so a bug on either side cannot make us read
/// outside the mapping.
///
/// Why one long file: set-up (socket options in the kernel's required order), the
/// receive-ring walk and the transmit ring share the one mapping and its offsets; split
/// apart, each part would need the others' private layout.
public final class PacketSocket: @unchecked Sendable {
    public struct Configuration: Sendable, Equatable {
        /// Receive block size: a multiple of the page size. The largest frame received whole
        /// is a little less than this, so 128 KiB also fits 64 KiB GRO aggregates.
        public var receiveBlockSize = 128 * 1024
        public var receiveBlockCount = 32
        /// How long the kernel keeps a partly filled block before handing it over: the
        /// worst-case added latency at low rates.
        public var receiveRetireTimeoutMilliseconds: UInt32 = 1
        /// Transmit frames; each holds one frame of up to MTU + 18 bytes.
        public var transmitFrameCount = 512
        /// Receive frames addressed to other MACs (PACKET_MR_PROMISC, undone on close).
        public var promiscuous = true
        /// PACKET_VNET_HDR: every frame, received or sent, comes with a 10-byte virtio-net
        /// header, so GSO super-frames and partial checksums pass between the kernel and
        /// the switch as they are (the kernel segments and completes them when needed; the
        /// forwarder does it for guests that did not negotiate those offloads).
        public var vnetHeaders = true
        /// Sent frames longer than a transmit ring frame holds (GSO super-frames up to
        /// 64 KiB) go through a second, ring-less socket on the same interface.
        public var largeFrameSocket = true
        /// PACKET_FANOUT: receive through a group of sockets on one interface, the kernel
        /// picking each frame's socket by flow hash (PACKET_FANOUT_HASH), so several poll
        /// threads share one interface's receive side.
        public var fanout = Fanout.none

        public init() {}
    }

    public enum Fanout: Sendable, Equatable {
        case none
        /// The first socket of a group: the kernel picks an unused group id (`fanoutGroup`).
        case newGroup
        /// Joins the group of that id (another socket's `fanoutGroup`, same interface).
        case join(UInt16)
    }

    /// What the interface the socket was bound to looks like now.
    public enum LinkState: Sendable, Equatable {
        /// IFF_UP and IFF_RUNNING (carrier) are both set.
        case up
        /// The interface exists with our index but is administratively down or has no carrier.
        case down
        /// The name now belongs to another interface (deleted and re-created): the socket
        /// is unbound for good and must be reopened.
        case replaced(newIndex: Int32)
        /// No interface has the name any more.
        case missing
    }

    /// PACKET_STATISTICS since the previous call (the kernel clears them on read).
    public struct KernelStatistics: Sendable, Equatable {
        public var packets: UInt64
        /// Frames the kernel dropped because every receive block was still ours.
        public var drops: UInt64
        /// Times the receive queue froze for that reason.
        public var freezes: UInt64
    }

    /// What one `receive` call skipped besides the frames it delivered.
    public struct ReceiveSummary: Sendable, Equatable {
        public var delivered = 0
        /// Frames cut short by the ring (tp_snaplen < tp_len): never forwarded.
        public var truncated = 0
        /// Runts and ring entries whose offsets or lengths fell outside their block.
        public var malformed = 0

        @inlinable public init() {}
    }

    /// The outcome of handing the queued transmit frames to the kernel.
    public struct FlushResult: Sendable, Equatable {
        public var submitted = 0
        /// Queued frames the kernel did not take (error or a full send buffer): dropped.
        public var dropped = 0
        /// The errno of a failed send, 0 when it succeeded.
        public var error: Int32 = 0

        @inlinable public init() {}
    }

    /// One received frame as it lies in the ring: valid only inside the `receive` callback.
    public struct ReceivedFrame {
        /// The captured bytes, without a VLAN tag the NIC or driver took off.
        public let data: UnsafeRawPointer
        public let capturedLength: Int
        /// 0, or TPID << 16 | TCI of a VLAN tag the kernel stripped (rx VLAN offload).
        public let vlanTag: UInt32
        /// TP_STATUS_CSUMNOTREADY: the sender left the L4 checksum to offload (a local
        /// stack behind a veth), so the checksum field holds only the pseudo-header sum.
        public let checksumPending: Bool
        /// The kernel's 10-byte virtio-net header (legacy layout, little-endian on the
        /// hosts we run on) right before the frame, or nil without PACKET_VNET_HDR.
        public let vnetHeader: UnsafeRawPointer?

        @inlinable
        init(data: UnsafeRawPointer, capturedLength: Int, vlanTag: UInt32, checksumPending: Bool,
             vnetHeader: UnsafeRawPointer?) {
            self.data = data
            self.capturedLength = capturedLength
            self.vlanTag = vlanTag
            self.checksumPending = checksumPending
            self.vnetHeader = vnetHeader
        }

        /// The frame's length on the wire (with its VLAN tag).
        @inlinable @inline(__always)
        public var length: Int { vlanTag == 0 ? capturedLength : capturedLength &+ 4 }

        /// Copies the frame as it was on the wire, re-inserting a stripped VLAN tag after
        /// the MAC addresses. The caller checks `length` against the destination first.
        /// (With vnet headers on, a kernel that strips a tag also leaves csum_start counting
        /// without it; such frames are rare on a veth and are passed as the kernel gave them.)
        @inlinable @inline(__always)
        public func copy(to destination: UnsafeMutableRawPointer) {
            if vlanTag == 0 {
                // Unsafe: the ring holds capturedLength bytes at data; the caller gave room for length.
                destination.copyMemory(from: data, byteCount: capturedLength)
                return
            }
            // Unsafe: capturedLength >= 14 (checked by receive), destination holds length bytes.
            destination.copyMemory(from: data, byteCount: 12)
            destination.storeBytes(of: UInt32(vlanTag).bigEndian, toByteOffset: 12, as: UInt32.self)
            (destination + 16).copyMemory(from: data + 12, byteCount: capturedLength &- 12)
        }
    }

    /// Ring positions, kept in manually allocated memory so the hot path pays no
    /// exclusivity checks or ARC for them.
    @usableFromInline
    struct RingCursor {
        /// The receive block being read (or to read next).
        @usableFromInline var block = 0
        /// Frames of the current block still to read; 0 when no block is open.
        @usableFromInline var framesLeft = 0
        /// Offset of the next frame in the open block.
        @usableFromInline var frameOffset = 0
        /// Bytes of the open block the kernel says it used (blk_len), the bound for offsets.
        @usableFromInline var blockLimit = 0
        @usableFromInline var blockOpen = false
        /// Next transmit frame to fill.
        @usableFromInline var transmitHead = 0
        /// Frames filled since the last flush.
        @usableFromInline var transmitQueued = 0
    }

    public let interfaceName: String
    public let interfaceIndex: Int32
    public let mtu: Int
    public let macAddress: [UInt8]
    /// PACKET_IGNORE_OUTGOING took (kernel 4.20+); without it outgoing frames are
    /// filtered by their sll_pkttype, which is done in any case.
    public let kernelIgnoresOutgoing: Bool
    /// The PACKET_FANOUT group the socket receives in (nil: none).
    public let fanoutGroup: UInt16?
    /// PACKET_QDISC_BYPASS took: transmitted frames skip the qdisc and the taps.
    public let bypassesQdisc: Bool
    /// The longest frame `enqueue` accepts: MTU + Ethernet header + one VLAN tag, or the
    /// transmit frame's room if smaller (the kernel refuses longer ones).
    public let maxTransmitLength: Int
    /// PACKET_VNET_HDR is on: `enqueue` takes a header, received frames carry one.
    public let carriesVnetHeaders: Bool
    /// The longest frame `sendLarge` accepts (0 without the large-frame socket).
    public let maxLargeFrameLength: Int
    public let configuration: Configuration

    private let descriptor: FileDescriptor
    private let mapping: MemoryMapping
    @usableFromInline let rawDescriptor: Int32
    @usableFromInline let receiveBase: UnsafeMutableRawPointer
    @usableFromInline let receiveBlockSize: Int
    @usableFromInline let receiveBlockCount: Int
    @usableFromInline let transmitBase: UnsafeMutableRawPointer
    @usableFromInline let transmitFrameSize: Int
    @usableFromInline let transmitFrameCount: Int
    @usableFromInline let transmitFramesPerBlock: Int
    @usableFromInline let transmitBlockSize: Int
    @usableFromInline let cursor: UnsafeMutablePointer<RingCursor>
    /// Bytes of vnet header in front of each ring frame: 10 or 0.
    @usableFromInline let vnetHeaderLength: Int
    private let largeFrameDescriptor: FileDescriptor?
    @usableFromInline let rawLargeFrameDescriptor: Int32

    /// The socket's fd, for epoll while the poll thread sleeps (readable when a receive
    /// block is handed over; EPOLLERR when the interface goes down).
    public var pollDescriptor: Int32 { rawDescriptor }

    @usableFromInline static let ethernetHeaderLength = 14
    @usableFromInline static let vlanTagLength = 4
    /// struct virtio_net_hdr: the kernel's PACKET_VNET_HDR header (no num_buffers).
    public static let vnetHeaderSize = 10
    /// The largest frame an skb can carry (IP's 64 KiB plus the Ethernet header).
    public static let largestGSOFrame = 65535 + 14 + 4
    static let ethPAll = UInt16(ETH_P_ALL)

    /// Opens a socket on `interface` (in the calling thread's network namespace), sets up
    /// both rings, binds, and turns on promiscuous mode. Nonblocking, close-on-exec.
    public init(interface: String, configuration: Configuration = Configuration()) throws(SystemError) {
        let pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))
        guard configuration.receiveBlockSize >= pageSize, configuration.receiveBlockSize % pageSize == 0,
              configuration.receiveBlockCount > 0, configuration.receiveBlockCount <= 4096,
              configuration.transmitFrameCount > 0, configuration.transmitFrameCount <= 65536 else {
            throw SystemError("PacketSocket configuration", errno: EINVAL)
        }
        // Protocol 0 until bind: the socket must not receive from every interface meanwhile.
        let socketType = Int32(SOCK_RAW.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
        let fd = FileDescriptor(adopting: try systemCall("socket(AF_PACKET)") { socket(AF_PACKET, socketType, 0) })
        let raw = fd.rawValue

        let index = Int32(try systemCall("SIOCGIFINDEX(\(interface))") { vhost_shims_interface_index(raw, interface) })
        let mtu = Int(try systemCall("SIOCGIFMTU(\(interface))") { vhost_shims_interface_mtu(raw, interface) })
        var mac = [UInt8](repeating: 0, count: 6)
        try systemCall("SIOCGIFHWADDR(\(interface))") { vhost_shims_interface_mac(raw, interface, &mac) }

        try Self.setOption(raw, PACKET_VERSION, Int32(TPACKET_V3.rawValue), "PACKET_VERSION")
        // Must precede the rings (the kernel answers EBUSY after). tpacket_rcv puts the header
        // right before the MAC header; tpacket_snd reads it at the start of the frame data.
        if configuration.vnetHeaders { try Self.setOption(raw, PACKET_VNET_HDR, 1, "PACKET_VNET_HDR") }
        let vnetLength = configuration.vnetHeaders ? Self.vnetHeaderSize : 0
        // Best effort: without them the port still works, only slower or with an extra filter.
        bypassesQdisc = (try? Self.setOption(raw, PACKET_QDISC_BYPASS, 1, "PACKET_QDISC_BYPASS")) != nil
        kernelIgnoresOutgoing = (try? Self.setOption(raw, PACKET_IGNORE_OUTGOING, 1, "PACKET_IGNORE_OUTGOING")) != nil
        // A frame the kernel finds malformed is skipped instead of stalling the ring.
        try Self.setOption(raw, PACKET_LOSS, 1, "PACKET_LOSS")

        // Transmit frames: a power of two that holds the header and MTU + 18 bytes.
        let longestFrame = mtu + Self.ethernetHeaderLength + Self.vlanTagLength
        var frameSize = 2048
        while frameSize < Int(VHOST_SHIMS_TPACKET3_ALIGNED_HEADER) + vnetLength + longestFrame && frameSize < 65536 { frameSize <<= 1 }
        let txBlockSize = max(frameSize, 64 * 1024)
        let framesPerBlock = txBlockSize / frameSize
        let txBlockCount = max(1, (configuration.transmitFrameCount + framesPerBlock - 1) / framesPerBlock)

        var rxRequest = tpacket_req3()
        rxRequest.tp_block_size = UInt32(configuration.receiveBlockSize)
        rxRequest.tp_block_nr = UInt32(configuration.receiveBlockCount)
        // tp_frame_size/nr are only checked for consistency in V3; frames are variable.
        rxRequest.tp_frame_size = 2048
        rxRequest.tp_frame_nr = UInt32(configuration.receiveBlockSize / 2048 * configuration.receiveBlockCount)
        rxRequest.tp_retire_blk_tov = configuration.receiveRetireTimeoutMilliseconds
        try Self.setRing(raw, PACKET_RX_RING, &rxRequest, "PACKET_RX_RING")

        // The transmit ring must have tov, private area and feature word zero (af_packet.c).
        var txRequest = tpacket_req3()
        txRequest.tp_block_size = UInt32(txBlockSize)
        txRequest.tp_block_nr = UInt32(txBlockCount)
        txRequest.tp_frame_size = UInt32(frameSize)
        txRequest.tp_frame_nr = UInt32(framesPerBlock * txBlockCount)
        try Self.setRing(raw, PACKET_TX_RING, &txRequest, "PACKET_TX_RING")

        // Frames in flight count against the send buffer; let the whole ring be in flight.
        let sendBuffer = Int32(clamping: txBlockSize * txBlockCount * 2)
        if (try? Self.setSocketOption(raw, SO_SNDBUFFORCE, sendBuffer, "SO_SNDBUFFORCE")) == nil {
            _ = try? Self.setSocketOption(raw, SO_SNDBUF, sendBuffer, "SO_SNDBUF")
        }

        let rxLength = configuration.receiveBlockSize * configuration.receiveBlockCount
        let txLength = txBlockSize * txBlockCount
        // The kernel maps the receive ring first, then the transmit ring, in one mapping.
        mapping = try MemoryMapping(descriptor: fd, length: rxLength + txLength)

        var address = sockaddr_ll()
        address.sll_family = UInt16(AF_PACKET)
        address.sll_protocol = Self.ethPAll.bigEndian
        address.sll_ifindex = index
        try systemCall("bind(AF_PACKET, \(interface))") {
            // Unsafe: bind reads exactly sizeof(sockaddr_ll) bytes of `address`.
            withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    bind(raw, $0, socklen_t(MemoryLayout<sockaddr_ll>.size))
                }
            }
        }

        if configuration.promiscuous {
            var membership = packet_mreq()
            membership.mr_ifindex = index
            membership.mr_type = UInt16(PACKET_MR_PROMISC)
            try systemCall("PACKET_ADD_MEMBERSHIP(promisc)") {
                setsockopt(raw, Int32(SOL_PACKET), PACKET_ADD_MEMBERSHIP, &membership, socklen_t(MemoryLayout<packet_mreq>.size))
            }
        }

        // GSO frames go out here: super-frames do not fit a transmit ring frame, the ring
        // socket bypasses the qdisc (see below), and sendmsg on a socket with a
        // transmit ring only kicks the ring (packet_sendmsg -> tpacket_snd), so they leave
        // through a second socket: protocol 0 (it receives nothing), no rings, same interface.
        if configuration.vnetHeaders && configuration.largeFrameSocket {
            let large = FileDescriptor(adopting: try systemCall("socket(AF_PACKET, large frames)") { socket(AF_PACKET, socketType, 0) })
            try Self.setOption(large.rawValue, PACKET_VNET_HDR, 1, "PACKET_VNET_HDR (large frames)")
            // No PACKET_QDISC_BYPASS here: packet_direct_xmit drops any skb that validate_xmit
            // replaces, i.e. every frame the kernel has to segment in software.
            if (try? Self.setSocketOption(large.rawValue, SO_SNDBUFFORCE, 4 << 20, "SO_SNDBUFFORCE")) == nil {
                _ = try? Self.setSocketOption(large.rawValue, SO_SNDBUF, 4 << 20, "SO_SNDBUF")
            }
            var largeAddress = sockaddr_ll()
            largeAddress.sll_family = UInt16(AF_PACKET)
            largeAddress.sll_protocol = 0
            largeAddress.sll_ifindex = index
            try systemCall("bind(AF_PACKET large frames, \(interface))") {
                // Unsafe: bind reads exactly sizeof(sockaddr_ll) bytes of `largeAddress`.
                withUnsafePointer(to: &largeAddress) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        bind(large.rawValue, $0, socklen_t(MemoryLayout<sockaddr_ll>.size))
                    }
                }
            }
            largeFrameDescriptor = large
            rawLargeFrameDescriptor = large.rawValue
            maxLargeFrameLength = Self.largestGSOFrame
        } else {
            largeFrameDescriptor = nil
            rawLargeFrameDescriptor = -1
            maxLargeFrameLength = 0
        }

        // Joined last, once bound (the kernel refuses an unbound socket), without the ephemeral
        // UNIQUEID flag for joiners: a group's members must agree on type and flags.
        var group: UInt16?
        if configuration.fanout != .none {
            let argument: UInt32 = switch configuration.fanout {
            case .newGroup: UInt32(PACKET_FANOUT_HASH | PACKET_FANOUT_FLAG_UNIQUEID) << 16
            case .join(let id): UInt32(PACKET_FANOUT_HASH) << 16 | UInt32(id)
            case .none: 0
            }
            try Self.setOption(raw, PACKET_FANOUT, Int32(bitPattern: argument), "PACKET_FANOUT")
            var value: UInt32 = 0
            var length = socklen_t(MemoryLayout<UInt32>.size)
            try systemCall("getsockopt(PACKET_FANOUT)") { getsockopt(raw, Int32(SOL_PACKET), PACKET_FANOUT, &value, &length) }
            group = UInt16(truncatingIfNeeded: value)
        }
        fanoutGroup = group

        descriptor = fd
        rawDescriptor = raw
        carriesVnetHeaders = configuration.vnetHeaders
        vnetHeaderLength = vnetLength
        interfaceName = interface
        interfaceIndex = index
        self.mtu = mtu
        macAddress = mac
        self.configuration = configuration
        maxTransmitLength = min(longestFrame, frameSize - Int(VHOST_SHIMS_TPACKET3_ALIGNED_HEADER) - vnetLength)
        receiveBase = mapping.base
        receiveBlockSize = configuration.receiveBlockSize
        receiveBlockCount = configuration.receiveBlockCount
        transmitBase = mapping.base + rxLength
        transmitFrameSize = frameSize
        transmitFrameCount = framesPerBlock * txBlockCount
        transmitFramesPerBlock = framesPerBlock
        transmitBlockSize = txBlockSize
        cursor = .allocate(capacity: 1)
        cursor.initialize(to: RingCursor())
    }

    deinit {
        cursor.deinitialize(count: 1)
        cursor.deallocate()
        // `mapping` unmaps and `descriptor` closes (dropping promiscuous mode) on release.
    }

    // MARK: - Receive (one thread)

    /// Hands up to `maxCount` received frames to `deliver`, which copies one out and
    /// returns true, or returns false to skip it (it then does not count against
    /// `maxCount`). Blocks are given back to the kernel as soon as they are read through.
    @inlinable
    public func receive(maxCount: Int, _ deliver: (ReceivedFrame) -> Bool) -> ReceiveSummary {
        var summary = ReceiveSummary()
        let c = cursor
        let headerEnd = Int(VHOST_SHIMS_TPACKET3_HDRLEN)
        let vnetLength = vnetHeaderLength
        while summary.delivered < maxCount {
            if c.pointee.framesLeft == 0 {
                if c.pointee.blockOpen { releaseBlock() }
                if !openBlock(&summary) { break }
                continue
            }
            // Unsafe: block index < receiveBlockCount, so the block lies inside the mapping.
            let block = UnsafeRawPointer(receiveBase + c.pointee.block &* receiveBlockSize)
            let offset = c.pointee.frameOffset
            let limit = c.pointee.blockLimit
            // The frame header and its sockaddr_ll must lie inside the used part of the block.
            guard offset <= limit &- headerEnd else {
                summary.malformed &+= 1
                c.pointee.framesLeft = 0
                continue
            }
            // Unsafe: offset + TPACKET3_HDRLEN <= blockLimit <= receiveBlockSize (checked above).
            let frame = block + offset
            let nextOffset = Int(frame.loadUnaligned(fromByteOffset: Int(VHOST_SHIMS_TP3_NEXT_OFFSET), as: UInt32.self))
            let snapLength = Int(frame.loadUnaligned(fromByteOffset: Int(VHOST_SHIMS_TP3_SNAPLEN), as: UInt32.self))
            let wireLength = Int(frame.loadUnaligned(fromByteOffset: Int(VHOST_SHIMS_TP3_LEN), as: UInt32.self))
            let status = frame.loadUnaligned(fromByteOffset: Int(VHOST_SHIMS_TP3_STATUS), as: UInt32.self)
            let macOffset = Int(frame.loadUnaligned(fromByteOffset: Int(VHOST_SHIMS_TP3_MAC), as: UInt16.self))
            let packetType = frame.load(fromByteOffset: Int(VHOST_SHIMS_TPACKET3_ALIGNED_HEADER) + Int(VHOST_SHIMS_SLL_PKTTYPE), as: UInt8.self)

            c.pointee.framesLeft &-= 1
            if c.pointee.framesLeft > 0 {
                // The next frame must start after this header and leave room for its own.
                if nextOffset < headerEnd || nextOffset > limit &- headerEnd &- offset {
                    summary.malformed &+= 1
                    c.pointee.framesLeft = 0
                } else {
                    c.pointee.frameOffset = offset &+ nextOffset
                }
            }
            // The captured bytes must lie inside the block, after the frame header.
            let room = limit &- offset
            // With vnet headers the kernel's header lies right before the MAC header.
            guard macOffset >= headerEnd &+ vnetLength, macOffset <= room, snapLength <= room &- macOffset else {
                summary.malformed &+= 1
                continue
            }
            // Our own and the host's transmissions on this interface are not for us.
            if packetType == UInt8(PACKET_OUTGOING) { continue }
            if snapLength < wireLength {
                summary.truncated &+= 1
                continue
            }
            if snapLength < Self.ethernetHeaderLength {
                summary.malformed &+= 1
                continue
            }
            var vlanTag: UInt32 = 0
            if status & UInt32(TP_STATUS_VLAN_VALID) != 0 {
                let tci = frame.loadUnaligned(fromByteOffset: Int(VHOST_SHIMS_TP3_VLAN_TCI), as: UInt32.self) & 0xFFFF
                var tpid = UInt32(0x8100)
                if status & UInt32(TP_STATUS_VLAN_TPID_VALID) != 0 {
                    let reported = UInt32(frame.loadUnaligned(fromByteOffset: Int(VHOST_SHIMS_TP3_VLAN_TPID), as: UInt16.self))
                    if reported != 0 { tpid = reported }
                }
                vlanTag = tpid << 16 | tci
            }
            // Unsafe: macOffset + snapLength <= room (checked above).
            let checksumPending = status & UInt32(TP_STATUS_CSUMNOTREADY) != 0
            // Unsafe: macOffset - vnetLength >= headerEnd (checked above), inside the frame.
            let vnet: UnsafeRawPointer? = vnetLength == 0 ? nil : frame + (macOffset &- vnetLength)
            if deliver(ReceivedFrame(data: frame + macOffset, capturedLength: snapLength, vlanTag: vlanTag,
                                     checksumPending: checksumPending, vnetHeader: vnet)) {
                summary.delivered &+= 1
            }
        }
        // Give a read-through block back now rather than on the next call.
        if c.pointee.framesLeft == 0 && c.pointee.blockOpen { releaseBlock() }
        return summary
    }

    /// True when a handed-over block waits or the open block has frames left: the last
    /// check before a poll thread sleeps.
    @inlinable
    public var hasPendingFrames: Bool {
        if cursor.pointee.framesLeft > 0 { return true }
        // Unsafe: block index < receiveBlockCount; block_status lies in the block descriptor.
        let block = receiveBase + cursor.pointee.block &* receiveBlockSize
        return vhost_shims_load_acquire_u32(block + Int(VHOST_SHIMS_BLOCK_STATUS)) & UInt32(TP_STATUS_USER) != 0
    }

    /// Opens the next block if the kernel has handed it over; false when it has not.
    @inlinable
    func openBlock(_ summary: inout ReceiveSummary) -> Bool {
        let c = cursor
        // Unsafe: block index < receiveBlockCount, so the descriptor lies inside the mapping.
        let block = receiveBase + c.pointee.block &* receiveBlockSize
        let status = vhost_shims_load_acquire_u32(block + Int(VHOST_SHIMS_BLOCK_STATUS))
        if status & UInt32(TP_STATUS_USER) == 0 { return false }
        let count = Int(block.loadUnaligned(fromByteOffset: Int(VHOST_SHIMS_BLOCK_NUM_PKTS), as: UInt32.self))
        let first = Int(block.loadUnaligned(fromByteOffset: Int(VHOST_SHIMS_BLOCK_FIRST_PKT), as: UInt32.self))
        let used = Int(block.loadUnaligned(fromByteOffset: Int(VHOST_SHIMS_BLOCK_LEN), as: UInt32.self))
        c.pointee.blockOpen = true
        // An empty block (retired by the timer) or one whose header does not add up is
        // given straight back; the frame loop bounds everything else by `used`.
        if count == 0 { c.pointee.framesLeft = 0; return true }
        guard used <= receiveBlockSize, first >= Int(VHOST_SHIMS_BLOCK_DESC_SIZE), first < used else {
            summary.malformed &+= 1
            c.pointee.framesLeft = 0
            return true
        }
        c.pointee.framesLeft = count
        c.pointee.frameOffset = first
        c.pointee.blockLimit = used
        return true
    }

    @inlinable
    func releaseBlock() {
        let c = cursor
        // Unsafe: block index < receiveBlockCount.
        let block = receiveBase + c.pointee.block &* receiveBlockSize
        // Release: our reads of the block happen before the kernel may refill it.
        vhost_shims_store_release_u32(block + Int(VHOST_SHIMS_BLOCK_STATUS), UInt32(TP_STATUS_KERNEL))
        c.pointee.framesLeft = 0
        c.pointee.blockOpen = false
        let next = c.pointee.block &+ 1
        c.pointee.block = next == receiveBlockCount ? 0 : next
    }

    // MARK: - Transmit (one thread at a time)

    public enum EnqueueResult: Sendable, Equatable {
        case queued
        /// Every transmit frame is still in flight or queued: drop.
        case ringFull
        /// Shorter than an Ethernet header or longer than `maxTransmitLength`: drop.
        case badLength
    }

    /// Copies one frame into the transmit ring (with a zero vnet header when vnet headers
    /// are on). Nothing is sent until `flush`.
    @inlinable
    public func enqueue(_ bytes: UnsafeRawPointer, length: Int) -> EnqueueResult {
        enqueue(bytes, length: length, vnetHeader: VnetHeaderFields())
    }

    /// The 10 bytes of a struct virtio_net_hdr (num_buffers unused), already validated by the
    /// caller: the kernel rejects (tpacket_snd: the whole ring send stops) or, worse, trusts
    /// what it gets.
    public typealias VnetHeaderFields = VnetHeader

    /// Copies one frame and its vnet header (ignored without vnet headers, so only plain
    /// headers make sense then) into the transmit ring. Nothing is sent until `flush`.
    @inlinable
    public func enqueue(_ bytes: UnsafeRawPointer, length: Int, vnetHeader: VnetHeaderFields) -> EnqueueResult {
        if length < Self.ethernetHeaderLength || length > maxTransmitLength { return .badLength }
        let c = cursor
        let head = c.pointee.transmitHead
        let frame = transmitFrame(head)
        let busy = UInt32(TP_STATUS_SEND_REQUEST) | UInt32(TP_STATUS_SENDING) | UInt32(TP_STATUS_WRONG_FORMAT)
        if vhost_shims_load_acquire_u32(frame + Int(VHOST_SHIMS_TP3_STATUS)) & busy != 0 { return .ringFull }
        let vnetLength = vnetHeaderLength
        let data = frame + Int(VHOST_SHIMS_TPACKET3_ALIGNED_HEADER)
        // Unsafe: data starts at the aligned header and vnetLength + length <= frame size - header.
        if vnetLength != 0 { vnetHeader.store(to: data) }
        (data + vnetLength).copyMemory(from: bytes, byteCount: length)
        let total = UInt32(truncatingIfNeeded: length &+ vnetLength)
        frame.storeBytes(of: 0, toByteOffset: Int(VHOST_SHIMS_TP3_NEXT_OFFSET), as: UInt32.self)
        frame.storeBytes(of: total, toByteOffset: Int(VHOST_SHIMS_TP3_LEN), as: UInt32.self)
        frame.storeBytes(of: total, toByteOffset: Int(VHOST_SHIMS_TP3_SNAPLEN), as: UInt32.self)
        // Release: the frame's bytes are visible before the kernel sees SEND_REQUEST.
        vhost_shims_store_release_u32(frame + Int(VHOST_SHIMS_TP3_STATUS), UInt32(TP_STATUS_SEND_REQUEST))
        let next = head &+ 1
        c.pointee.transmitHead = next == transmitFrameCount ? 0 : next
        c.pointee.transmitQueued &+= 1
        return .queued
    }

    /// Asks the kernel to send every queued frame (one sendto, not waiting for completion).
    /// Frames it did not take are taken back and reported as dropped, so a frame queued
    /// while the link was down never goes out minutes later, and our head and the
    /// kernel's stay in step.
    @inlinable
    public func flush() -> FlushResult {
        var result = FlushResult()
        let c = cursor
        let queued = c.pointee.transmitQueued
        if queued == 0 { return result }
        c.pointee.transmitQueued = 0
        result.submitted = queued
        do {
            try kick()
        } catch where error.errno == ENETDOWN {
            // The interface went down at some point: the kernel leaves ENETDOWN pending on
            // the socket and fails the next send with it even when the link is back up.
            // That failure cleared it, so one retry tells a stale error from a real one.
            do { try kick() } catch { result.error = error.errno }
        } catch {
            result.error = error.errno
        }
        // Only sendto reads SEND_REQUEST frames, and it has returned: whatever still has that
        // status was not taken. The kernel stops at the first one it cannot send, so they
        // form the tail of what we queued.
        var first = c.pointee.transmitHead &- queued
        if first < 0 { first &+= transmitFrameCount }
        var index = first
        var reclaimFrom = -1
        for _ in 0..<queued {
            let frame = transmitFrame(index)
            if vhost_shims_load_acquire_u32(frame + Int(VHOST_SHIMS_TP3_STATUS)) == UInt32(TP_STATUS_SEND_REQUEST) {
                if reclaimFrom < 0 { reclaimFrom = index }
                vhost_shims_store_release_u32(frame + Int(VHOST_SHIMS_TP3_STATUS), UInt32(TP_STATUS_AVAILABLE))
                result.dropped &+= 1
            }
            index &+= 1
            if index == transmitFrameCount { index = 0 }
        }
        if reclaimFrom >= 0 { c.pointee.transmitHead = reclaimFrom }
        return result
    }

    /// Sends one GSO frame (a super-frame the kernel segments if the device cannot) with its vnet header
    /// through the large-frame socket, at once (call `flush` first to keep the order).
    /// Returns 0 or the errno (EMSGSIZE when too long or without that socket).
    @inlinable
    public func sendLarge(_ bytes: UnsafeRawPointer, length: Int, vnetHeader: VnetHeaderFields) -> Int32 {
        if rawLargeFrameDescriptor < 0 || length < Self.ethernetHeaderLength || length > maxLargeFrameLength { return EMSGSIZE }
        var header = (UInt64(0), UInt16(0))
        return withUnsafeMutableBytes(of: &header) { headerBytes -> Int32 in
            // Unsafe: headerBytes holds 16 >= 10 bytes; the iovecs cover only the caller's bytes.
            vnetHeader.store(to: headerBytes.baseAddress!)
            var vectors = (iovec(iov_base: headerBytes.baseAddress, iov_len: Self.vnetHeaderSize),
                           iovec(iov_base: UnsafeMutableRawPointer(mutating: bytes), iov_len: length))
            return withUnsafeMutableBytes(of: &vectors) { vectorBytes -> Int32 in
                var message = msghdr()
                message.msg_iov = vectorBytes.baseAddress!.assumingMemoryBound(to: iovec.self)
                message.msg_iovlen = 2
                return sendmsg(rawLargeFrameDescriptor, &message, Int32(MSG_DONTWAIT)) < 0 ? vhost_shims_errno() : 0
            }
        }
    }

    @inlinable @inline(__always)
    func kick() throws(SystemError) {
        try systemCall("sendto(PACKET_TX_RING)") { sendto(rawDescriptor, nil, 0, Int32(MSG_DONTWAIT), nil, 0) }
    }

    @inlinable @inline(__always)
    func transmitFrame(_ index: Int) -> UnsafeMutableRawPointer {
        // Unsafe: index < transmitFrameCount; blocks are contiguous in the mapping, and a
        // frame lies inside its block (framesPerBlock * frameSize <= blockSize).
        let block = index / transmitFramesPerBlock
        let slot = index &- block &* transmitFramesPerBlock
        return transmitBase + (block &* transmitBlockSize &+ slot &* transmitFrameSize)
    }

    // MARK: - Control side

    /// Looks the interface up again by name, in the socket's own network namespace.
    public func linkState() -> LinkState {
        NetworkInterface.linkState(named: interfaceName, index: interfaceIndex, socket: rawDescriptor)
    }

    /// Whether the interface is up with carrier (IFF_UP and IFF_RUNNING).
    public func linkIsUp() -> Bool { linkState() == .up }

    /// Reads and clears the socket's pending error (SO_ERROR), e.g. the ENETDOWN the kernel
    /// leaves when the interface goes down. Returns 0 when none was pending. A level-triggered
    /// epoll would report EPOLLERR until this is called; the poll threads register edge-triggered.
    @discardableResult
    public func takePendingError() -> Int32 {
        var code: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        return getsockopt(rawDescriptor, SOL_SOCKET, SO_ERROR, &code, &length) == 0 ? code : 0
    }

    /// Reads and clears the kernel's receive counters.
    public func kernelStatistics() throws(SystemError) -> KernelStatistics {
        var stats = tpacket_stats_v3()
        var length = socklen_t(MemoryLayout<tpacket_stats_v3>.size)
        try systemCall("getsockopt(PACKET_STATISTICS)") {
            getsockopt(rawDescriptor, Int32(SOL_PACKET), PACKET_STATISTICS, &stats, &length)
        }
        return KernelStatistics(packets: UInt64(stats.tp_packets), drops: UInt64(stats.tp_drops),
                                freezes: UInt64(stats.tp_freeze_q_cnt))
    }

    // MARK: - Helpers

    private static func setOption(_ fd: Int32, _ option: Int32, _ value: Int32, _ name: String) throws(SystemError) {
        var value = value
        try systemCall("setsockopt(\(name))") {
            setsockopt(fd, Int32(SOL_PACKET), option, &value, socklen_t(MemoryLayout<Int32>.size))
        }
    }

    private static func setSocketOption(_ fd: Int32, _ option: Int32, _ value: Int32, _ name: String) throws(SystemError) {
        var value = value
        try systemCall("setsockopt(\(name))") {
            setsockopt(fd, SOL_SOCKET, option, &value, socklen_t(MemoryLayout<Int32>.size))
        }
    }

    private static func setRing(_ fd: Int32, _ option: Int32, _ request: inout tpacket_req3, _ name: String) throws(SystemError) {
        try systemCall("setsockopt(\(name))") {
            setsockopt(fd, Int32(SOL_PACKET), option, &request, socklen_t(MemoryLayout<tpacket_req3>.size))
        }
    }
}
