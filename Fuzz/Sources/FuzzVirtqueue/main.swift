// Fuzz target (b): descriptor-chain walking and packet copy over fuzzer-controlled guest
// memory and rings, with a guest that rewrites its rings between and during the switch's
// passes over them.
//
// Input:
//   u64 negotiated features (bit 0, unused by virtio-net, asks for used-ring logging;
//       bit 34, RING_PACKED, picks the packed ring; bit 35 IN_ORDER, ...)
//   u16 ring size r: below 0x8000 a small ring (split: 1 << (r % 9), 1 .. 256; packed:
//       1 + (r & 0xff), 1 .. 256); from 0x8000 on any size (split: 1 << (r % 16), 1 .. 32768;
//       packed: 1 + (r & 0x7fff), 1 .. 32768)
//   u8  memory layout (b % 3), see below
//   u16 the device's starting avail index (packed: bits 0-14 the slot, bit 15 the wrap
//       counter, as SET_VRING_BASE gives it; a slot outside the ring breaks the ring)
//   ops, up to 32, each an op byte and its operands, ended by an op byte 0xff
//   the guest memory image
//
// Rings of up to 256 entries live in 64 KiB of guest memory, b % 3: one 64 KiB region at
// guest-physical 0; two adjacent 32 KiB regions in different memfds; two 32 KiB regions with a
// 32 KiB hole between them. Descriptor table / packed descriptor ring at 0, avail ring /
// driver event area at 0x1000, used ring / device event area at 0x2000; the image is copied
// at guest-physical 0 (hole skipped).
// Larger rings (257 .. 32768 entries) live in about 1 MiB, b % 3: one 1 MiB region; regions
// [0, 0xe0000) and [0xe0000, 0x100000) in different memfds; [0, 0xe0000) and
// [0xf0000, 0x110000) with a hole between. Descriptors at 0 (up to 512 KiB), avail ring /
// driver event area at 0x80000, used ring / device event area at 0x98000, buffers from
// 0xe0000. The image's first 4 KiB (256 descriptors) are repeated over the whole descriptor
// table, its second 4 KiB over the avail ring (driver event area), its third 4 KiB go to the
// used ring, and the rest from 0xe0000 on (hole skipped): a 32768-entry ring is full of
// descriptors from a small input.
// Each memory set is mapped once per run (memfds); every input starts from zeroed memory.
//
// Op byte b (kind b & 7, argument a = b >> 3, 0 .. 31), operands from the following bytes:
//   0  dequeueBurst (guest transmit) into 8 buffers of 1536 bytes, each its own allocation;
//      then the offload resolver (checksum completion, segmentation) for a destination that
//      accepts the GUEST_* offloads in `features` (the guest's headers drive it)
//   1  enqueueBurst (guest receive) of 4 frames; lengths and virtio-net header fields come
//      from the image's last 64 bytes (deterministic per input); a & 1: any length
//   2  u16 n: the guest posts more: split avail.idx += n; packed: flips the AVAIL/USED bits of
//      the descriptor in slot n % size
//   3  setGuestNotifications(a & 1)
//   4  u16 slot, 16 bytes d: the guest rewrites descriptor slot % size with d (in the ring's
//      descriptor layout: split addr u64, len u32, flags u16, next u16; packed addr u64,
//      len u32, id u16, flags u16). a bits 0-3 pick the fields written (address, length,
//      bytes 12-13, bytes 14-15; none: all); a & 16: XOR d into them instead (flip NEXT,
//      INDIRECT, WRITE, an id or next bit, an address bit)
//   5  u16 i, u16 v: the guest rewrites an avail entry. Split, a & 3: 0 avail.ring[i % size],
//      1 avail.idx, 2 avail.flags, 3 used_event. Packed, a & 3: 0 the flags of slot i % size
//      (AVAIL/USED marks, NEXT, WRITE, INDIRECT), 1 the driver event off_wrap, 2 its flags,
//      3 the id of slot i % size. a & 4: XOR v in instead
//   6  u16 p: the next op, when it is a 4 or 5, happens not now but at the switch's first access
//      to guest page p (4 KiB, modulo the layout's pages) from then on: in the middle of a later
//      burst, between two of the switch's reads (a prefetch pass and the walk, a claim and the
//      chain, one hop and the next). Up to 4 such writes wait at once (more, or a page in a
//      hole, get their write at once); those never reached are dropped at the end of the input
//   7  dequeueBurst with 1 + a % 8 buffers (burst-size edges), then the resolver as in op 0
// A deferred write works by protecting that page of the switch's own mapping (the fuzzer
// writes through a second mapping of the same memfd): the first access faults, the SIGSEGV
// handler makes the write and unprotects the page, and the access runs again.
//
// Checked after every op: dequeued frame lengths; packed avail and used positions inside the
// ring (the IN_ORDER batch bound). Every buffer the device touches is checked by
// AddressSanitizer (own allocations), every guest access stays inside the memfd mappings or
// it faults.
import Dataplane
import FuzzSupport
import Glibc
import VhostSystem
import Virtio

/// One for the whole run, as one per poll thread in the daemon (its buffers are reused).
let resolver = try! OffloadResolver()
let pageSize = 4096

/// Guest-physical addresses of the three ring areas and of the buffer area of a memory set.
struct RingAreas {
    let descriptors: UInt64
    let avail: UInt64
    let used: UInt64
    let buffers: UInt64
}

let smallAreas = RingAreas(descriptors: 0, avail: 0x1000, used: 0x2000, buffers: 0)
let largeAreas = RingAreas(descriptors: 0, avail: 0x8_0000, used: 0x9_8000, buffers: 0xe_0000)

struct Layout {
    let memory: GuestMemory
    /// (guest-physical start, host pointer of the fuzzer's own mapping, size)
    let views: [(UInt64, UnsafeMutableRawPointer, Int)]
    /// Guest-physical end of the highest region.
    let span: UInt64

    /// The fuzzer's own view of guest-physical `gpa` (not the switch's mapping), nil in a hole.
    func view(_ gpa: UInt64) -> UnsafeMutablePointer<UInt8>? {
        for (start, host, length) in views where gpa >= start && gpa - start < UInt64(length) {
            return (host + Int(gpa - start)).assumingMemoryBound(to: UInt8.self)
        }
        return nil
    }

    /// Copies `bytes` to guest-physical `gpa` on, skipping holes and stopping at the span.
    func write(_ bytes: ArraySlice<UInt8>, at gpa: UInt64) {
        guard !bytes.isEmpty else { return }
        bytes.withUnsafeBytes { source in
            for (start, host, length) in views {
                let from = max(start, gpa)
                let to = min(start + UInt64(length), gpa + UInt64(source.count))
                guard from < to else { continue }
                (host + Int(from - start)).copyMemory(from: source.baseAddress! + Int(from - gpa), byteCount: Int(to - from))
            }
        }
    }

    /// `pattern` repeated over [gpa, gpa + length), which lies in one region (the ring areas of
    /// the large layouts do). Doubling copies: a short pattern costs no more than a long one.
    func tile(_ pattern: ArraySlice<UInt8>, at gpa: UInt64, length: Int) {
        guard !pattern.isEmpty, length > 0, let start = view(gpa), view(gpa + UInt64(length) - 1) == start + (length - 1) else { return }
        let destination = UnsafeMutableRawPointer(start)
        var filled = min(pattern.count, length)
        pattern.withUnsafeBytes { destination.copyMemory(from: $0.baseAddress!, byteCount: filled) }
        while filled < length {
            let count = min(filled, length - filled)
            (destination + filled).copyMemory(from: destination, byteCount: count)
            filled += count
        }
    }
}

var viewsKeepAlive: [MemoryMapping] = []

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
    let span = regions.map { $0.gpa + UInt64($0.size) }.max() ?? 0
    return Layout(memory: try! GuestMemory(regions: mapped), views: views, span: span)
}

let smallLayouts: [Layout] = [
    makeLayout([(0, 0x10000)]),
    makeLayout([(0, 0x8000), (0x8000, 0x8000)]),
    makeLayout([(0, 0x8000), (0x1_0000, 0x8000)]),
]
let largeLayouts: [Layout] = [
    makeLayout([(0, 0x10_0000)]),
    makeLayout([(0, 0xe_0000), (0xe_0000, 0x2_0000)]),
    makeLayout([(0, 0xe_0000), (0xf_0000, 0x2_0000)]),
]
// The dirty log: one bit per 4 KiB page of up to 128 MiB of guest-physical space.
let logFD = try! MemFD.create(name: "fuzz-vq-log", size: 4096)
let logMapping = try! MemoryMapping(descriptor: logFD, length: 4096)
let dirtyLog = try! DirtyLog(mapping: logMapping, offset: 0, size: 4096)

let bufferCount = 8
let bufferCapacity = 1536

// MARK: Writes made in the middle of a burst (op 6)

/// Up to `maxTriggers` pending writes, each waiting for the switch's first access to one page
/// of its own mapping (protected PROT_NONE until then). Plain memory reached through `let`
/// pointers only: the SIGSEGV handler reads it (no Swift runtime calls there).
let maxTriggers = 4
let maxTriggerBytes = 16
/// Page-aligned host address in the switch's mapping, 0 when the slot is free.
let triggerPages = UnsafeMutablePointer<UInt>.allocate(capacity: maxTriggers)
let triggerCounts = UnsafeMutablePointer<Int>.allocate(capacity: maxTriggers)
let triggerXor = UnsafeMutablePointer<Bool>.allocate(capacity: maxTriggers)
/// Deferred writes made so far (for FUZZ_VQ_TRACE).
let triggersFired = UnsafeMutablePointer<Int>.allocate(capacity: 1)
/// Per slot, `maxTriggerBytes` destinations in the fuzzer's own view and their values.
let triggerTargets = UnsafeMutablePointer<UnsafeMutablePointer<UInt8>?>.allocate(capacity: maxTriggers * maxTriggerBytes)
let triggerValues = UnsafeMutablePointer<UInt8>.allocate(capacity: maxTriggers * maxTriggerBytes)
let previousSegvAction = UnsafeMutablePointer<sigaction>.allocate(capacity: 1)
let segvHandlerInstalled = UnsafeMutablePointer<Bool>.allocate(capacity: 1)
triggerPages.initialize(repeating: 0, count: maxTriggers)
triggerCounts.initialize(repeating: 0, count: maxTriggers)
triggerXor.initialize(repeating: false, count: maxTriggers)
triggerTargets.initialize(repeating: nil, count: maxTriggers * maxTriggerBytes)
triggerValues.initialize(repeating: 0, count: maxTriggers * maxTriggerBytes)
segvHandlerInstalled.initialize(to: false)
triggersFired.initialize(to: 0)
/// FUZZ_VQ_TRACE=1: one line per op on stderr (ring positions, deferred writes made), for
/// writing seeds and reading findings.
let trace = getenv("FUZZ_VQ_TRACE") != nil

/// Makes slot `slot`'s write (the guest's store lands now) and frees the slot. Page
/// protection is the caller's.
func fireTrigger(_ slot: Int) {
    let base = slot * maxTriggerBytes
    for i in 0..<triggerCounts[slot] {
        if let target = triggerTargets[base + i] {
            target.pointee = triggerXor[slot] ? target.pointee ^ triggerValues[base + i] : triggerValues[base + i]
        }
    }
    triggerPages[slot] = 0
    triggersFired.pointee &+= 1
}

let onSegv: @convention(c) (Int32, UnsafeMutablePointer<siginfo_t>?, UnsafeMutableRawPointer?) -> Void = { signo, info, context in
    let address = UInt(bitPattern: info?.pointee._sifields._sigfault.si_addr)
    let page = address & ~UInt(pageSize - 1)
    var handled = false
    if page != 0 {
        for slot in 0..<maxTriggers where triggerPages[slot] == page {
            fireTrigger(slot)
            handled = true
        }
    }
    if handled {
        // The faulting access runs again and now sees the guest's write.
        mprotect(UnsafeMutableRawPointer(bitPattern: page), pageSize, PROT_READ | PROT_WRITE)
        return
    }
    // Not ours: a real fault. Hand it on (libFuzzer, then AddressSanitizer) or die.
    let previous = previousSegvAction.pointee
    if previous.sa_flags & SA_SIGINFO != 0, let handler = previous.__sigaction_handler.sa_sigaction {
        handler(signo, info, context)
        return
    }
    var restore = previous
    sigaction(SIGSEGV, &restore, nil)
}

/// After libFuzzer's and AddressSanitizer's handlers, so ours runs first and forwards.
func installSegvHandler() {
    guard !segvHandlerInstalled.pointee else { return }
    var action = sigaction()
    action.__sigaction_handler.sa_sigaction = onSegv
    action.sa_flags = SA_SIGINFO | Int32(SA_NODEFER)
    sigemptyset(&action.sa_mask)
    guard sigaction(SIGSEGV, &action, previousSegvAction) == 0 else { fatalError("sigaction(SIGSEGV): errno \(errno)") }
    segvHandlerInstalled.pointee = true
}

/// A guest store: byte values (or XOR masks) for guest-physical addresses.
struct GuestWrite {
    var bytes: [(gpa: UInt64, value: UInt8)] = []
    var xor = false

    func apply(_ layout: Layout) {
        for (gpa, value) in bytes {
            guard let target = layout.view(gpa) else { continue }
            target.pointee = xor ? target.pointee ^ value : value
        }
    }
}

/// Defers `write` to the switch's first access to guest page `page`; at once when that page
/// is not mapped or every slot is taken.
func arm(_ write: GuestWrite, page: UInt64, layout: Layout) {
    guard let host = layout.memory.translateGuestPhysical(page * UInt64(pageSize), length: UInt64(pageSize)),
          let slot = (0..<maxTriggers).first(where: { triggerPages[$0] == 0 }) else {
        write.apply(layout)
        return
    }
    let pageAddress = UInt(bitPattern: host) & ~UInt(pageSize - 1)
    let base = slot * maxTriggerBytes
    let count = min(write.bytes.count, maxTriggerBytes)
    for i in 0..<count {
        triggerTargets[base + i] = layout.view(write.bytes[i].gpa)
        triggerValues[base + i] = write.bytes[i].value
    }
    triggerCounts[slot] = count
    triggerXor[slot] = write.xor
    triggerPages[slot] = pageAddress
    guard mprotect(UnsafeMutableRawPointer(bitPattern: pageAddress), pageSize, PROT_NONE) == 0 else {
        fatalError("mprotect: errno \(errno)")
    }
}

/// Drops the writes the switch never reached and unprotects their pages.
func disarmAll() {
    for slot in 0..<maxTriggers where triggerPages[slot] != 0 {
        let page = triggerPages[slot]
        triggerPages[slot] = 0
        mprotect(UnsafeMutableRawPointer(bitPattern: page), pageSize, PROT_READ | PROT_WRITE)
    }
}

// MARK: Ops

enum Op {
    case dequeue(maxCount: Int)
    case enqueue(anyLength: Bool)
    case post(UInt16)
    case notifications(Bool)
    case writeDescriptor(slot: UInt16, fields: UInt8, xor: Bool, bytes: [UInt8])
    case writeAvail(which: UInt8, index: UInt16, value: UInt16, xor: Bool)
    case deferNext(page: UInt16)
}

func parseOps(_ input: inout FuzzInput) -> [Op] {
    var ops: [Op] = []
    while !input.isAtEnd && ops.count < 32 {
        let b = input.u8()
        if b == 0xff { break }
        let argument = b >> 3
        switch b & 7 {
        case 0: ops.append(.dequeue(maxCount: bufferCount))
        case 1: ops.append(.enqueue(anyLength: argument & 1 != 0))
        case 2: ops.append(.post(input.u16()))
        case 3: ops.append(.notifications(argument & 1 != 0))
        case 4:
            let slot = input.u16()
            ops.append(.writeDescriptor(slot: slot, fields: argument & 15, xor: argument & 16 != 0, bytes: input.take(16)))
        case 5:
            let index = input.u16()
            ops.append(.writeAvail(which: argument & 3, index: index, value: input.u16(), xor: argument & 4 != 0))
        case 6: ops.append(.deferNext(page: input.u16()))
        default: ops.append(.dequeue(maxCount: 1 + Int(argument % 8)))
        }
    }
    return ops
}

/// The guest store an op 4 or 5 makes (nil for other ops).
func guestWrite(for op: Op, packed: Bool, ringSize: Int, areas: RingAreas) -> GuestWrite? {
    var write = GuestWrite()
    func put16(_ gpa: UInt64, _ v: UInt16) { write.bytes += [(gpa, UInt8(v & 0xff)), (gpa + 1, UInt8(v >> 8))] }
    switch op {
    case .writeDescriptor(let slot, let fields, let xor, let bytes):
        let entry = areas.descriptors + 16 * UInt64(Int(slot) % ringSize)
        let chosen = fields == 0 ? 15 : fields
        let ranges: [(bit: UInt8, range: Range<Int>)] = [(1, 0..<8), (2, 8..<12), (4, 12..<14), (8, 14..<16)]
        for (bit, range) in ranges where chosen & bit != 0 {
            for i in range { write.bytes.append((entry + UInt64(i), i < bytes.count ? bytes[i] : 0)) }
        }
        write.xor = xor
    case .writeAvail(let which, let index, let value, let xor):
        let slot = UInt64(Int(index) % ringSize)
        if packed {
            switch which {
            case 0: put16(areas.descriptors + 16 * slot + 14, value)
            case 1: put16(areas.avail, value)
            case 2: put16(areas.avail + 2, value)
            default: put16(areas.descriptors + 16 * slot + 12, value)
            }
        } else {
            switch which {
            case 0: put16(areas.avail + 4 + 2 * slot, value)
            case 1: put16(areas.avail + 2, value)
            case 2: put16(areas.avail, value)
            default: put16(areas.avail + 4 + 2 * UInt64(ringSize), value)
            }
        }
        write.xor = xor
    default:
        return nil
    }
    return write
}

@_cdecl("LLVMFuzzerTestOneInput")
func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    installSegvHandler()
    var input = FuzzInput(fuzzBytes(data, size))
    let features = input.u64()
    let packed = features & (1 << 34) != 0
    let sizeField = Int(input.u16())
    let ringSize: Int
    if sizeField < 0x8000 {
        ringSize = packed ? 1 + (sizeField & 0xff) : 1 << (sizeField % 9)
    } else {
        ringSize = packed ? 1 + (sizeField & 0x7fff) : 1 << (sizeField % 16)
    }
    let large = ringSize > 256
    let layoutIndex = Int(input.u8() % 3)
    let layout = large ? largeLayouts[layoutIndex] : smallLayouts[layoutIndex]
    let areas = large ? largeAreas : smallAreas
    let startIndex = input.u16()
    let ops = parseOps(&input)
    let image = input.rest()
    // Guest memory: zero, then the image.
    for (_, host, length) in layout.views {
        memset(host, 0, length)  // not initializeMemory: unspecialized in debug builds, a call per byte
    }
    if large {
        let descriptorBytes = 16 * ringSize
        let availBytes = packed ? Int(PackedVirtqueueLayout.eventAreaSize) : Int(VirtqueueLayout.availRingSize(ringSize))
        layout.tile(image.prefix(0x1000)[...], at: areas.descriptors, length: descriptorBytes)
        layout.tile(image.dropFirst(0x1000).prefix(0x1000), at: areas.avail, length: availBytes)
        layout.write(image.dropFirst(0x2000).prefix(0x1000), at: areas.used)
        layout.write(image.dropFirst(0x3000).prefix(Int(layout.span - areas.buffers)), at: areas.buffers)
    } else {
        layout.write(image.prefix(Int(layout.span))[...], at: 0)
    }
    let statistics = VirtqueueStatistics()
    let settings = NegotiatedRingSettings(memory: layout.memory, negotiatedFeatures: features, statistics: statistics,
                                          dirtyLog: dirtyLog)
    let queue: Virtqueue
    if packed {
        guard let ring = try? PackedVirtqueueLayout.map(size: ringSize, guestPhysicalDescriptorAddress: areas.descriptors,
                                                        driverEventAddress: areas.avail, deviceEventAddress: areas.used,
                                                        memory: layout.memory, logRing: features & 1 != 0) else {
            fatalError("packed ring layout refused for size \(ringSize)")
        }
        let base = PackedVirtqueue.decodeBase(startIndex)
        queue = .packed(PackedVirtqueue(layout: ring, settings: settings, lastAvailIndex: base.index,
                                        availWrapCounter: base.wrap))
    } else {
        guard let ring = try? VirtqueueLayout.map(size: ringSize, guestPhysicalDescriptorAddress: areas.descriptors,
                                                  availAddress: areas.avail, usedAddress: areas.used,
                                                  memory: layout.memory, logUsedRing: features & 1 != 0) else {
            fatalError("ring layout refused for size \(ringSize)")
        }
        queue = .split(SplitVirtqueue(layout: ring, settings: settings, lastAvailIndex: startIndex))
    }
    let buffers = UnsafeMutablePointer<PacketBuffer>.allocate(capacity: bufferCount)
    var storage: [UnsafeMutableRawPointer] = []
    for i in 0..<bufferCount {
        let p = UnsafeMutableRawPointer.allocate(byteCount: bufferCapacity, alignment: 16)
        memset(p, Int32(i), bufferCapacity)
        storage.append(p)
        buffers[i] = PacketBuffer(data: p, capacity: bufferCapacity)
    }
    defer {
        disarmAll()
        for p in storage { p.deallocate() }
        buffers.deallocate()
    }
    var tail = FuzzInput(Array(image.suffix(64)))
    let pages = max(1, layout.span / UInt64(pageSize))
    var deferredPage: UInt64? = nil
    for op in ops {
        if let write = guestWrite(for: op, packed: packed, ringSize: ringSize, areas: areas) {
            if let page = deferredPage {
                arm(write, page: page, layout: layout)
            } else {
                write.apply(layout)
            }
            deferredPage = nil
            continue
        }
        deferredPage = nil
        switch op {
        case .dequeue(let maxCount):
            let n = queue.dequeueBurst(into: buffers, maxCount: maxCount)
            fuzzInvariant(n >= 0 && n <= maxCount, "dequeued \(n) of at most \(maxCount)")
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
        case .enqueue(let anyLength):
            for i in 0..<4 {
                buffers[i].data = storage[i]
                buffers[i].capacity = bufferCapacity
                // Mostly valid lengths; with anyLength any value.
                buffers[i].length = anyLength ? Int(tail.u16()) : 14 + (Int(tail.u16()) % (bufferCapacity - 13))
                buffers[i].header = VirtioNetHeader(flags: tail.u8(), gsoType: tail.u8(), headerLength: tail.u16(),
                                                    gsoSize: tail.u16(), checksumStart: tail.u16(), checksumOffset: tail.u16())
            }
            _ = queue.enqueueBurst(UnsafePointer(buffers), count: 4)
        case .post(let n):
            if packed {
                // The guest makes a descriptor available (or takes it back): flip its marks.
                var write = GuestWrite()
                let flags = areas.descriptors + 16 * UInt64(Int(n) % ringSize) + 14
                write.bytes = [(flags, 0x80), (flags + 1, 0x80)]
                write.xor = true
                write.apply(layout)
            } else {
                // The guest posts `n` more entries.
                guard let index = layout.view(areas.avail + 2) else { break }
                let old = UInt16(index[0]) | UInt16(index[1]) << 8
                let new = old &+ n
                index[0] = UInt8(new & 0xff)
                index[1] = UInt8(new >> 8)
            }
        case .notifications(let enabled):
            queue.setGuestNotifications(enabled: enabled)
        case .deferNext(let page):
            deferredPage = UInt64(page) % pages
        case .writeDescriptor, .writeAvail:
            break  // handled above
        }
        if trace { traceOp(op, queue) }
        checkPositions(queue, ringSize: ringSize)
    }
    _ = queue.hasAvailableBuffers()
    _ = queue.split?.currentUsedIndex()
    return 0
}

func traceOp(_ op: Op, _ queue: Virtqueue) {
    var line = "\(op):"
    if let ring = queue.packed {
        line += " avail \(ring.lastAvailIndex)/\(ring.availWrapCounter) used \(ring.lastUsedIndex)/\(ring.usedWrapCounter)"
    } else if let ring = queue.split {
        line += " avail \(ring.lastAvailIndex) used \(ring.currentUsedIndex())"
    }
    line += " broken \(queue.isBroken) deferred writes made \(triggersFired.pointee)\n"
    fputs(line, stderr)
}

/// The packed ring's positions are slots: outside the ring, the next used descriptor (or the
/// next read) lands past the validated ring (issue 16: the IN_ORDER batch bound).
func checkPositions(_ queue: Virtqueue, ringSize: Int) {
    guard let ring = queue.packed else { return }
    fuzzInvariant(Int(ring.lastUsedIndex) < ringSize && Int(ring.lastAvailIndex) < ringSize,
                  "packed ring of \(ringSize): used position \(ring.lastUsedIndex), avail position \(ring.lastAvailIndex)")
}

runFuzzer(fuzzOne)
