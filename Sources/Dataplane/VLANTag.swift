import Virtio

/// 802.1Q tags on the switch's own packet buffers, moved in place: a pop moves the two MAC
/// addresses 4 bytes forward and starts the frame there; a push starts the frame 4 bytes
/// earlier (the pool's headroom, `PacketBufferPool.headroom`) and moves them back. 12 bytes
/// move, never the payload. The virtio-net header's csum_start and hdr_len count from the
/// frame's start, so they move with the tag.
enum VLANTag {
    static let tpid: UInt16 = 0x8100
    static let length = 4
    /// What `vid(of:)` answers for a frame without an 802.1Q tag.
    static let untagged = -1

    /// The VLAN id of a frame's 802.1Q tag (0: priority tag only), or `untagged`.
    @inline(__always)
    static func vid(of buffer: PacketBuffer) -> Int {
        // Unsafe: frames reaching the forwarder hold at least 14 bytes; the tag's TCI only
        // when length >= 16, checked before it is read.
        let type = UInt16(bigEndian: buffer.data.loadUnaligned(fromByteOffset: 12, as: UInt16.self))
        guard type == tpid else { return untagged }
        guard buffer.length >= 16 else { return 0 }
        return Int(UInt16(bigEndian: buffer.data.loadUnaligned(fromByteOffset: 14, as: UInt16.self)) & 0xFFF)
    }

    /// Takes the tag off a received frame. False (the frame untouched) when the frame is too
    /// short to carry its tag and a type, or its offload header points into the tag.
    @inline(__always)
    static func pop(_ buffer: inout PacketBuffer) -> Bool {
        guard canPop(buffer) else { return false }
        shiftAddressesForward(&buffer)
        return true
    }

    /// Whether `pop` would take the tag off: the frame carries its tag and a type, and its
    /// offload header does not point into the tag.
    @inline(__always)
    static func canPop(_ buffer: PacketBuffer) -> Bool {
        let tagged = 12 + length + 2
        guard buffer.length >= tagged else { return false }
        let needsChecksum = buffer.header.flags & VirtioNetHeader.flagNeedsChecksum != 0
        if needsChecksum && Int(buffer.header.checksumStart) < tagged { return false }
        if buffer.header.headerLength != 0 && Int(buffer.header.headerLength) < tagged { return false }
        return true
    }

    /// Takes off a tag `canPop` accepted.
    @inline(__always)
    static func popChecked(_ buffer: inout PacketBuffer) { shiftAddressesForward(&buffer) }

    /// Puts a tag for `vid` (priority 0) in front of the frame's type. The buffer must have
    /// 4 bytes of headroom before `data` (every pool buffer has).
    @inline(__always)
    static func push(_ buffer: inout PacketBuffer, vid: Int) {
        // Unsafe: the pool's headroom lies before data (PacketBufferPool.headroom >= 4 plus
        // what pops added); memmove handles the overlap.
        let start = buffer.data - length
        start.copyMemory(from: buffer.data, byteCount: 12)
        start.storeBytes(of: tpid.bigEndian, toByteOffset: 12, as: UInt16.self)
        start.storeBytes(of: UInt16(truncatingIfNeeded: vid & 0xFFF).bigEndian, toByteOffset: 14, as: UInt16.self)
        buffer.data = start
        buffer.length &+= length
        buffer.capacity &+= length
        if buffer.header.flags & VirtioNetHeader.flagNeedsChecksum != 0 { buffer.header.checksumStart &+= UInt16(length) }
        if buffer.header.headerLength != 0 { buffer.header.headerLength &+= UInt16(length) }
    }

    /// Undoes `push` once the frame was sent, so the next destination sees it as before.
    @inline(__always)
    static func unpush(_ buffer: inout PacketBuffer) { shiftAddressesForward(&buffer) }

    @inline(__always)
    private static func shiftAddressesForward(_ buffer: inout PacketBuffer) {
        // Unsafe: the frame holds at least 16 bytes (checked by pop, or pushed); memmove
        // handles the overlap.
        (buffer.data + length).copyMemory(from: buffer.data, byteCount: 12)
        buffer.data += length
        buffer.length &-= length
        buffer.capacity &-= length
        if buffer.header.flags & VirtioNetHeader.flagNeedsChecksum != 0 { buffer.header.checksumStart &-= UInt16(length) }
        if buffer.header.headerLength != 0 { buffer.header.headerLength &-= UInt16(length) }
    }
}
