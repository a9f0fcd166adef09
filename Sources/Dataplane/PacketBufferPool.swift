import Virtio
import VhostSystem

/// Preallocated packet buffers for one poll thread: a burst's worth for receiving plus a
/// scratch array for gathering a burst's packets per output port. Nothing is allocated
/// per packet; the memory is one anonymous mapping made at start-up.
final class PacketBufferPool {
    static let burstSize = 32
    /// Room for the largest frame a vhost-user guest can hand us (64 KiB GSO frames later).
    static let bufferCapacity = 65_536
    /// Buffers lie `bufferCapacity + 192` bytes apart, not 64 KiB: at a 64 KiB stride the first
    /// cache line of all 32 buffers maps to the same L1 set, more lines than the set has ways.
    /// 192 = 3 lines, odd in lines: 32 distinct L1 sets. (A precaution: no A/B on this machine
    /// showed a difference; the large swings seen then were the host's vCPU placement.)
    static let bufferStride = bufferCapacity + 192
    /// Bytes before each buffer's data, so a VLAN tag is pushed in place (`VLANTag`): one
    /// cache line, inside the stride's spare 192 bytes.
    static let headroom = 64

    private let mapping: MemoryMapping
    private let base: UnsafeMutableRawPointer
    // Unsafe: both arrays hold `burstSize` elements for the pool's lifetime.
    let buffers: UnsafeMutablePointer<PacketBuffer>
    let scratch: UnsafeMutablePointer<PacketBuffer>

    init() throws(SystemError) {
        mapping = try MemoryMapping(anonymousLength: Self.burstSize * Self.bufferStride)
        base = mapping.base
        buffers = .allocate(capacity: Self.burstSize)
        scratch = .allocate(capacity: Self.burstSize)
        for i in 0..<Self.burstSize {
            // Unsafe: i * bufferStride + headroom + bufferCapacity <= mapping.length.
            let data = base + i * Self.bufferStride + Self.headroom
            (buffers + i).initialize(to: PacketBuffer(data: data, capacity: Self.bufferCapacity))
            (scratch + i).initialize(to: PacketBuffer(data: data, capacity: Self.bufferCapacity))
        }
    }

    /// Puts the first `count` receive buffers back at their own memory after a burst whose
    /// frames had tags popped (their data moved forward), before the next receive.
    @inline(__always)
    func restore(count: Int) {
        for i in 0..<count {
            // Unsafe: i < burstSize, inside the mapping as in init.
            buffers[i].data = base + (i &* Self.bufferStride &+ Self.headroom)
            buffers[i].capacity = Self.bufferCapacity
        }
    }

    deinit {
        buffers.deinitialize(count: Self.burstSize)
        buffers.deallocate()
        scratch.deinitialize(count: Self.burstSize)
        scratch.deallocate()
    }
}
