import CVhostShims
import Glibc
import VhostSystem
import VhostUser
import Virtio

func descriptorBytes(address: UInt64, length: UInt32, flags: UInt16, next: UInt16) -> [UInt8] {
    var w = LittleEndianWriter()
    w.u64(address); w.u32(length); w.u16(flags); w.u16(next)
    return w.bytes
}

/// The guest memory the hostile front-end hands to the daemon: one memfd, mapped here too.
/// Guest-physical 0, front-end virtual 0x7f00_0000_0000. Ring i: descriptors at i * 0x4000,
/// avail +0x1000, used +0x2000 (size 256). Buffers from 0x10000.
final class GuestMemoryFile {
    let size: Int
    let fd: FileDescriptor
    let mapping: MemoryMapping
    let region: GuestMemoryRegionDescriptor

    /// The shared memory of most cases is 1 MiB; the cases that shrink memory or need big
    /// rings make their own (so a shrunk file never reaches another case).
    init(name: String = "hostile-guest", size: Int = 1 << 20) throws {
        self.size = size
        fd = try MemFD.create(name: name, size: size)
        mapping = try MemoryMapping(descriptor: fd, length: size)
        region = GuestMemoryRegionDescriptor(guestPhysicalAddress: 0, size: UInt64(size), userspaceAddress: 0x7f00_0000_0000, mmapOffset: 0)
    }

    func duplicate() -> FileDescriptor { try! FileDescriptor.duplicate(fd.rawValue) }

    /// Shrinks the file under the daemon's mapping, as a hostile front-end would. Our own
    /// mapping past `bytes` is gone too: touching it from here would raise SIGBUS in this
    /// process, so callers write only below `bytes` afterwards.
    func shrink(to bytes: Int) { _ = ftruncate(fd.rawValue, off_t(bytes)) }

    /// Guest-physical `gpa` as the front-end's virtual address (what SET_VRING_ADDR takes).
    func userAddress(_ gpa: Int) -> UInt64 { region.userspaceAddress + UInt64(gpa) }

    /// Rings and buffers back to zero (each iteration starts from clean memory).
    func reset() { mapping.base.initializeMemory(as: UInt8.self, repeating: 0, count: 0x40000) }

    func ringAddresses(_ ring: Int) -> (descriptor: UInt64, avail: UInt64, used: UInt64) {
        let base = region.userspaceAddress + UInt64(ring) * 0x4000
        return (base, base + 0x1000, base + 0x2000)
    }

    func writeGuest(_ gpa: Int, _ bytes: [UInt8]) {
        bytes.withUnsafeBytes { mapping.base.advanced(by: gpa).copyMemory(from: $0.baseAddress!, byteCount: bytes.count) }
    }

    func writeDescriptor(_ ring: Int, _ index: Int, address: UInt64, length: UInt32, flags: UInt16, next: UInt16) {
        writeGuest(ring * 0x4000 + index * 16, descriptorBytes(address: address, length: length, flags: flags, next: next))
    }

    func availIndex(_ ring: Int) -> UInt16 { mapping.base.load(fromByteOffset: ring * 0x4000 + 0x1002, as: UInt16.self) }

    func setAvailIndex(_ ring: Int, _ value: UInt16) {
        // Release: entries before the index (the daemon loads it with acquire).
        vhost_shims_store_release_u16(mapping.base + ring * 0x4000 + 0x1002, value.littleEndian)
    }

    /// Puts `heads` on the avail ring and publishes them.
    func postHeads(_ ring: Int, _ heads: [UInt16]) {
        var index = availIndex(ring)
        for head in heads {
            mapping.base.storeBytes(of: head, toByteOffset: ring * 0x4000 + 0x1004 + Int(index % 256) * 2, as: UInt16.self)
            index &+= 1
        }
        setAvailIndex(ring, index)
    }

    /// A well-formed 60-byte frame after its 12-byte virtio-net header, to a MAC nobody has:
    /// the switch floods it.
    static let transmitFrame: [UInt8] = [UInt8](repeating: 0, count: 12)
        + [0x02, 0xee, 0, 0, 0, 0x01, 0x02, 0xee, 0, 0, 0, 0x02, 0x08, 0x00] + [UInt8](repeating: 0x5a, count: 46)

    /// `count` copies of `transmitFrame` on ring 1, the guest's transmit ring.
    func postTransmit(count: Int) {
        var heads: [UInt16] = []
        for i in 0..<min(count, 128) {
            let buffer = 0x10000 + i * 128
            writeGuest(buffer, Self.transmitFrame)
            let head = Int(availIndex(1) &+ UInt16(i)) % 256
            writeDescriptor(1, head, address: UInt64(buffer), length: UInt32(Self.transmitFrame.count), flags: 0, next: 0)
            heads.append(UInt16(head))
        }
        postHeads(1, heads)
    }

    /// One descriptor at the next free head of `ring` (standard layout), published.
    func postBuffer(_ ring: Int, address: Int, length: Int, flags: UInt16) {
        let head = Int(availIndex(ring) % 256)
        writeDescriptor(ring, head, address: UInt64(address), length: UInt32(length), flags: flags, next: 0)
        postHeads(ring, [UInt16(head)])
    }
}

