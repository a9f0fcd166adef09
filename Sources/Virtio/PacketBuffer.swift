import VhostSystem

/// A frame in memory the dataplane owns (its buffer pool): `capacity` bytes at `data`, of
/// which the first `length` hold an Ethernet frame, plus the virtio-net header that came or
/// goes with it. A plain value: no references, so copying it costs no ARC traffic.
public struct PacketBuffer {
    public var data: UnsafeMutableRawPointer
    public var capacity: Int
    public var length: Int
    public var header: VirtioNetHeader

    @inlinable
    public init(data: UnsafeMutableRawPointer, capacity: Int) {
        self.data = data
        self.capacity = capacity
        length = 0
        header = VirtioNetHeader()
    }

    /// A buffer holding a `length`-byte frame with a plain header.
    @inlinable
    public init(data: UnsafeMutableRawPointer, capacity: Int, length: Int) {
        self.data = data
        self.capacity = capacity
        self.length = length
        header = VirtioNetHeader()
    }
}
