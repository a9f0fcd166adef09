import VhostSystem
import Virtio

/// Assembles messages from a non-blocking socket: the header first, then exactly `size`
/// payload bytes, over as many reads as the front-end needs. It never reads past the
/// current message, so fds sent with the next message stay with it. A front-end that
/// stalls halfway simply leaves the reader waiting; nothing blocks.
public struct VhostUserMessageReader {
    public enum Event {
        case message(VhostUserMessage)
        /// Nothing more to read now (EAGAIN); call again when the socket is readable.
        case needMoreData
        /// The peer closed the connection between messages.
        case closed
        /// The stream cannot continue: a bad header, a close mid-message, a socket error.
        case failed(VhostUserProtocolError)
    }

    private var headerBytes: [UInt8] = []
    private var header: VhostUserHeader?
    private var payload: [UInt8] = []
    private var descriptors: [FileDescriptor] = []
    private var descriptorsTruncated = false

    public init() {}

    /// True while part of a message has been read.
    public var isMidMessage: Bool { !headerBytes.isEmpty }

    /// Reads until one message is complete, the socket has nothing more, or the stream fails.
    public mutating func next(from socket: FileDescriptor) -> Event {
        while true {
            let wanted: Int
            if let header {
                wanted = Int(header.size) - payload.count
            } else {
                wanted = VhostUserHeader.size - headerBytes.count
            }
            let received: UnixSocket.ReceivedBytes
            do {
                received = try UnixSocket.receive(socket, maxBytes: wanted,
                                                  maxDescriptors: max(0, VhostUserLimits.maxDescriptorsPerMessage - descriptors.count))
            } catch {
                if error.wouldBlock { return .needMoreData }
                return fail(.socketError(error.description))
            }
            descriptors.append(contentsOf: received.descriptors)
            if received.descriptorsTruncated { descriptorsTruncated = true }
            if received.bytes.isEmpty {
                if let header {
                    return fail(.disconnectedMidMessage(received: payload.count, expected: Int(header.size)))
                }
                if headerBytes.isEmpty && descriptors.isEmpty && !descriptorsTruncated { return .closed }
                return fail(.shortHeader(received: headerBytes.count))
            }
            if header == nil {
                headerBytes.append(contentsOf: received.bytes)
                guard headerBytes.count == VhostUserHeader.size else { continue }
                guard let decoded = VhostUserHeader(decoding: headerBytes) else { return fail(.shortHeader(received: headerBytes.count)) }
                if let error = decoded.framingError() { return fail(error) }
                header = decoded
                payload.reserveCapacity(Int(decoded.size))
            } else {
                payload.append(contentsOf: received.bytes)
            }
            if let header, payload.count == Int(header.size) {
                let message = VhostUserMessage(header: header, payload: payload, descriptors: descriptors,
                                               descriptorsTruncated: descriptorsTruncated)
                reset(closing: false)
                return .message(message)
            }
        }
    }

    /// Drops a partial message and closes its fds (session end).
    public mutating func reset() { reset(closing: true) }

    private mutating func reset(closing: Bool) {
        if closing { for descriptor in descriptors { descriptor.close() } }
        headerBytes = []
        header = nil
        payload = []
        descriptors = []
        descriptorsTruncated = false
    }

    private mutating func fail(_ error: VhostUserProtocolError) -> Event {
        reset(closing: true)
        return .failed(error)
    }
}

public enum VhostUserLimits {
    /// vhost-user.rst: at most 8 fds per message.
    public static let maxDescriptorsPerMessage = 8
    /// SET_VRING_NUM: a power of two up to 32768 (VIRTIO 1.x 2.7: Queue Size).
    public static let maxRingSize = 32768
    /// Memory slots reported by GET_MAX_MEM_SLOTS (ADD_MEM_REG hotplug): all that
    /// `GuestMemory` takes, QEMU's KVM limit, what virtio-mem and DIMM hotplug need.
    public static let maxMemorySlots = GuestMemory.maxMemorySlots
    /// NET_SET_MTU bounds: the IPv4 minimum and the largest 16-bit value.
    public static let mtuRange: ClosedRange<UInt64> = 68...65535
    /// The dirty log for the largest guest we accept (16 TiB of guest-physical space).
    public static let maxDirtyLogSize: UInt64 = (16 << 40) / 4096 / 8
    /// The most guest memory one session may have mapped at once (every region's mapping
    /// together): 1 TiB. The address space is shared by every port (128 TiB on x86-64), so
    /// one front-end must not be able to take it all.
    public static let maxMappedGuestMemory: UInt64 = 1 << 40
    /// Ring-changing requests (SET_VRING_*, SET_MEM_TABLE, SET_FEATURES, SET_STATUS, ...) a
    /// session may send per second, plus this many per vring of the device: a set-up
    /// sends about six per ring, a migration a few more. Past it the session is closed as
    /// hostile: each such request makes every poll thread stop for a republish. The first
    /// burst may be larger by one request per memory slot: a front-end that connects (or
    /// reconnects) with a full table sends one ADD_MEM_REG per region at once.
    public static let ringChangesPerSecond = 256
    public static let ringChangesPerSecondPerVring = 16
    /// SEND_RARP: announcements waiting to be sent, and the shortest interval between two
    /// for the same MAC.
    public static let maxPendingAnnouncements = 16
    public static let announceIntervalMilliseconds: UInt64 = 1000
}
