// Fuzz target (b): descriptor-chain walking and packet copy over fuzzer-controlled guest
// memory and rings.
//
// Input: u64 negotiated features (bit 0, unused by virtio-net, asks for used-ring logging;
// bit 34, RING_PACKED, picks the packed ring), u8 ring size (split: 1 << (b % 9): 1 .. 256;
// packed: 1 + b, any size 1 .. 256), u8 memory layout (b % 3: one 64 KiB region at
// guest-physical 0; two adjacent 32 KiB regions in different memfds; two 32 KiB regions with
// a 32 KiB hole between them), u16 the device's starting avail index (packed: bits 0-14 the
// slot, bit 15 the wrap counter, as SET_VRING_BASE gives it), then op bytes up to 0xff,
// then the guest memory image (copied at guest-physical 0, hole skipped).
//
// The ring lives at guest-physical 0: descriptor table at 0, avail ring at 0x1000, used ring
// at 0x2000 (packed: descriptor ring at 0, driver event area at 0x1000, device event area at
// 0x2000). Ops (b & 3, argument b >> 2):
//   0  dequeueBurst (guest transmit) into 8 buffers of 1536 bytes, each its own allocation;
//      then the offload resolver (checksum completion, segmentation) for a destination that
//      accepts the GUEST_* offloads in `features` (the guest's headers drive it)
//   1  enqueueBurst (guest receive) of 4 frames; lengths and virtio-net header fields come
//      from the next input bytes of the image area's tail (deterministic per input)
//   2  the guest posts more: avail.idx += argument (packed: flips the AVAIL/USED bits of the
//      descriptor in slot argument % size)
//   3  setGuestNotifications(argument & 1)
// Every buffer the device touches is checked by AddressSanitizer (own allocations), every
// guest access stays inside the memfd mappings or it faults.
import Dataplane
import FuzzSupport
import Glibc
import VhostSystem
import Virtio

let regionSize = 0x8000
/// One for the whole run, as one per poll thread in the daemon (its buffers are reused).
let resolver = try! OffloadResolver()
let imageSize = 0x10000

struct Layout {
    let memory: GuestMemory
    /// (guest-physical start, host pointer of the fuzzer's own mapping, size)
    let views: [(UInt64, UnsafeMutableRawPointer, Int)]
}

func makeLayout(_ regions: [(gpa: UInt64, size: Int)]) -> Layout {
    var mapped: [GuestMemoryRegion] = []
    var views: [(UInt64, UnsafeMutableRawPointer, Int)] = []
    for (i, r) in regions.enumerated() {
        let fd = try! MemFD.create(name: "fuzz-vq-\(i)", size: r.size)
        let view = try! MemoryMapping(descriptor: fd, length: r.size)
        views.append((r.gpa, view.base, r.size))
        viewsKeepAlive.append(view)
        mapped.append(try! GuestMemoryRegion.map(GuestMemoryRegionDescriptor(guestPhysicalAddress: r.gpa, size: UInt64(r.size),
                                                                             userspaceAddress: 0x7f00_0000_0000 + r.gpa, mmapOffset: 0), fd: fd))
    }
    return Layout(memory: try! GuestMemory(regions: mapped), views: views)
}

var viewsKeepAlive: [MemoryMapping] = []
let layouts: [Layout] = [
    makeLayout([(0, imageSize)]),
    makeLayout([(0, regionSize), (UInt64(regionSize), regionSize)]),
    makeLayout([(0, regionSize), (UInt64(2 * regionSize), regionSize)]),
]
// The dirty log: one bit per 4 KiB page of up to 128 KiB of guest-physical space.
let logFD = try! MemFD.create(name: "fuzz-vq-log", size: 4096)
let logMapping = try! MemoryMapping(descriptor: logFD, length: 4096)
let dirtyLog = try! DirtyLog(mapping: logMapping, offset: 0, size: 4096)

let bufferCount = 8
let bufferCapacity = 1536

@_cdecl("LLVMFuzzerTestOneInput")
func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    var input = FuzzInput(fuzzBytes(data, size))
    let features = input.u64()
    let packed = features & (1 << 34) != 0
    let sizeByte = Int(input.u8())
    let ringSize = packed ? 1 + sizeByte : 1 << (sizeByte % 9)
    let layout = layouts[Int(input.u8() % 3)]
    let lastAvail = input.u16()
    var ops: [UInt8] = []
    while !input.isAtEnd && ops.count < 32 {
        let op = input.u8()
        if op == 0xff { break }
        ops.append(op)
    }
    let image = input.rest()
    // Guest memory: zero, then the image (skipping any hole).
    for (gpa, host, length) in layout.views {
        host.initializeMemory(as: UInt8.self, repeating: 0, count: length)
        let start = Int(gpa)
        if start < image.count {
            let count = min(length, image.count - start)
            image.withUnsafeBytes { host.copyMemory(from: $0.baseAddress! + start, byteCount: count) }
        }
    }
    // The ring sits in guest-physical [0, 0x2000 + used size), which every layout maps.
    let statistics = VirtqueueStatistics()
    let queue: Virtqueue
    if packed {
        guard let ring = try? PackedVirtqueueLayout.map(size: ringSize, guestPhysicalDescriptorAddress: 0, driverEventAddress: 0x1000,
                                                        deviceEventAddress: 0x2000, memory: layout.memory, logRing: features & 1 != 0) else {
            fatalError("packed ring layout refused for size \(ringSize)")
        }
        let base = PackedVirtqueue.decodeBase(lastAvail)
        queue = .packed(PackedVirtqueue(layout: ring, memory: layout.memory, negotiatedFeatures: features,
                                        lastAvailIndex: base.index, availWrapCounter: base.wrap, callDescriptor: -1,
                                        statistics: statistics, dirtyLog: dirtyLog))
    } else {
        guard let ring = try? VirtqueueLayout.map(size: ringSize, guestPhysicalDescriptorAddress: 0, availAddress: 0x1000,
                                                  usedAddress: 0x2000, memory: layout.memory, logUsedRing: features & 1 != 0) else {
            fatalError("ring layout refused for size \(ringSize)")
        }
        queue = .split(SplitVirtqueue(layout: ring, memory: layout.memory, negotiatedFeatures: features,
                                      lastAvailIndex: lastAvail, callDescriptor: -1,
                                      statistics: statistics, dirtyLog: dirtyLog))
    }
    let buffers = UnsafeMutablePointer<PacketBuffer>.allocate(capacity: bufferCount)
    var storage: [UnsafeMutableRawPointer] = []
    for i in 0..<bufferCount {
        let p = UnsafeMutableRawPointer.allocate(byteCount: bufferCapacity, alignment: 16)
        p.initializeMemory(as: UInt8.self, repeating: UInt8(truncatingIfNeeded: i), count: bufferCapacity)
        storage.append(p)
        buffers[i] = PacketBuffer(data: p, capacity: bufferCapacity)
    }
    defer {
        for p in storage { p.deallocate() }
        buffers.deallocate()
    }
    var tail = FuzzInput(Array(image.suffix(64)))
    for op in ops {
        let argument = Int(op >> 2)
        switch op & 3 {
        case 0:
            let n = queue.dequeueBurst(into: buffers, maxCount: bufferCount)
            for i in 0..<n {
                precondition(buffers[i].length >= 14 && buffers[i].length <= bufferCapacity, "dequeued length \(buffers[i].length)")
            }
            var totals = OffloadResolver.Totals()
            resolver.resolve(UnsafePointer(buffers), count: n, accepted: features & OffloadResolver.everyGuestOffload, totals: &totals) { batch, count in
                for i in 0..<count {
                    precondition(batch[i].length >= 14 && batch[i].length <= batch[i].capacity, "resolved length \(batch[i].length)")
                }
                return count
            }
        case 1:
            for i in 0..<4 {
                buffers[i].data = storage[i]
                buffers[i].capacity = bufferCapacity
                // Mostly valid lengths; argument bit 0 picks lengths from the input (any value).
                buffers[i].length = argument & 1 != 0 ? Int(tail.u16()) : 14 + (Int(tail.u16()) % (bufferCapacity - 13))
                buffers[i].header = VirtioNetHeader(flags: tail.u8(), gsoType: tail.u8(), headerLength: tail.u16(),
                                                    gsoSize: tail.u16(), checksumStart: tail.u16(), checksumOffset: tail.u16())
            }
            _ = queue.enqueueBurst(UnsafePointer(buffers), count: 4)
        case 2:
            let host = layout.views[0].1
            if packed {
                // The guest makes a descriptor available (or takes it back): flip its marks.
                let flags = 16 * (argument % ringSize) + 14
                host.storeBytes(of: host.load(fromByteOffset: flags, as: UInt16.self) ^ 0x8080, toByteOffset: flags, as: UInt16.self)
            } else {
                // The guest posts `argument` more entries.
                let old = host.load(fromByteOffset: 0x1002, as: UInt16.self)
                host.storeBytes(of: old &+ UInt16(argument), toByteOffset: 0x1002, as: UInt16.self)
            }
        default:
            queue.setGuestNotifications(enabled: argument & 1 != 0)
        }
    }
    _ = queue.hasAvailableBuffers()
    _ = queue.split?.currentUsedIndex()
    return 0
}

runFuzzer(fuzzOne)
