// Microbenchmarks of the dataplane hot path on memfd-backed rings (no front-end process):
// a fake guest posts descriptors, the real SplitVirtqueue / BurstForwarder / MacLearningTable
// code does the device side. Prints a table, and with --json one JSON line at the end.
//
//   swift build -c release --package-path Benchmarks/Micro --scratch-path .build-bench-micro
//   taskset -c 1 .build-bench-micro/release/vhost-switch-micro [--json] [--runs N] [--only NAME]
//   ... --loop SECONDS NAME   runs one benchmark for that long (for perf record / callgrind)
#if canImport(Glibc)
import Glibc
#endif
import CVhostShims
@_spi(Benchmarks) import Dataplane
import VhostSystem
import Virtio

// MARK: - fake guest

/// One region of guest memory in a memfd, mapped by the "guest" and by GuestMemory.
final class FakeGuest {
    static let regionSize = 8 << 20
    let fd: FileDescriptor
    let driver: MemoryMapping
    let memory: GuestMemory

    init() throws {
        fd = try MemFD.create(name: "micro-guest", size: Self.regionSize)
        driver = try MemoryMapping(descriptor: fd, length: Self.regionSize)
        let region = try GuestMemoryRegion.map(
            GuestMemoryRegionDescriptor(guestPhysicalAddress: 0, size: UInt64(Self.regionSize),
                                        userspaceAddress: 0x7f00_0000_0000, mmapOffset: 0), fd: fd)
        memory = try GuestMemory(regions: [region])
    }

    func pointer(_ gpa: UInt64) -> UnsafeMutableRawPointer { driver.base + Int(gpa) }
}

/// A split ring whose descriptor i always points at buffer i; the guest re-posts heads in
/// order, which is valid because the device completes every chain within its burst.
final class FakeRing {
    static let size = 256
    let guest: FakeGuest
    let avail: UnsafeMutableRawPointer
    let queue: SplitVirtqueue
    var availIndex: UInt16 = 0

    /// transmit: guest -> device buffers holding `frame`; receive: writable empty buffers.
    init(guest: FakeGuest, base: UInt64, buffers: UInt64, transmit: Bool, frame: [UInt8], headerSize: Int) throws {
        self.guest = guest
        let descAddr = base, availAddr = base + 0x1000, usedAddr = base + 0x2000
        guest.pointer(base).initializeMemory(as: UInt8.self, repeating: 0, count: 0x3000)
        for i in 0..<Self.size {
            let bufferAddr = buffers + UInt64(i) * 2048
            let d = guest.pointer(descAddr + UInt64(i) * 16)
            d.storeBytes(of: bufferAddr.littleEndian, toByteOffset: 0, as: UInt64.self)
            let length = transmit ? UInt32(headerSize + frame.count) : 2048
            d.storeBytes(of: length.littleEndian, toByteOffset: 8, as: UInt32.self)
            d.storeBytes(of: (transmit ? UInt16(0) : UInt16(2)).littleEndian, toByteOffset: 12, as: UInt16.self)
            d.storeBytes(of: UInt16(0), toByteOffset: 14, as: UInt16.self)
            let b = guest.pointer(bufferAddr)
            b.initializeMemory(as: UInt8.self, repeating: 0, count: 2048)
            if transmit { frame.withUnsafeBytes { (b + headerSize).copyMemory(from: $0.baseAddress!, byteCount: frame.count) } }
        }
        avail = guest.pointer(availAddr)
        let layout = try VirtqueueLayout.map(size: Self.size, guestPhysicalDescriptorAddress: descAddr, availAddress: availAddr,
                                             usedAddress: usedAddr, memory: guest.memory, logUsedRing: false)
        queue = SplitVirtqueue(layout: layout, settings: NegotiatedRingSettings(memory: guest.memory, negotiatedFeatures: 1 << 32),
                               lastAvailIndex: 0)
    }

    /// The guest posts `count` heads (what a driver does per burst, minus building chains).
    @inline(__always)
    func post(_ count: Int) {
        for k in 0..<count {
            let slot = Int((availIndex &+ UInt16(k)) & UInt16(Self.size - 1))
            avail.storeBytes(of: UInt16(slot).littleEndian, toByteOffset: 4 + slot * 2, as: UInt16.self)
        }
        availIndex &+= UInt16(count)
        vhost_shims_store_release_u16(avail + 2, availIndex.littleEndian)
    }
}

func ethernetFrame(length: Int, destination: UInt64, source: UInt64) -> [UInt8] {
    var frame = [UInt8](repeating: 0, count: length)
    for i in 0..<6 {
        frame[i] = UInt8(truncatingIfNeeded: destination >> (40 - 8 * UInt64(i)))
        frame[6 + i] = UInt8(truncatingIfNeeded: source >> (40 - 8 * UInt64(i)))
    }
    frame[12] = 0x08
    return frame
}

// MARK: - timing

func nanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
}

struct Result {
    var name: String
    var unit: String
    var runs: Int
    var medianNs: Double
    var minNs: Double
    var medianCycles: Double
}

nonisolated(unsafe) var sink: UInt64 = 0
nonisolated(unsafe) var runsWanted = 15
nonisolated(unsafe) var results: [Result] = []
nonisolated(unsafe) var only: String? = nil
nonisolated(unsafe) var loopSeconds: Double? = nil

/// Calls `body` (one unit = `perCall` operations) repeatedly: `runs` runs of ~50 ms each,
/// after a warm-up; reports the median per operation.
func measure(_ name: String, unit: String, perCall: Int, _ body: () -> Void) {
    if let only, !name.contains(only) { return }
    if let seconds = loopSeconds {
        let end = nanoseconds() + UInt64(seconds * 1e9)
        var calls = 0
        while nanoseconds() < end { for _ in 0..<100 { body() }; calls += 100 }
        print("\(name): looped \(calls) calls")
        return
    }
    var calls = 1
    while true {  // calibrate to ~50 ms per run
        let t0 = nanoseconds()
        for _ in 0..<calls { body() }
        if nanoseconds() - t0 > 50_000_000 || calls > 1 << 30 { break }
        calls *= 2
    }
    var perOpNs: [Double] = []
    var perOpCycles: [Double] = []
    for _ in 0..<runsWanted {
        let t0 = nanoseconds()
        let c0 = vhost_shims_rdtsc()
        for _ in 0..<calls { body() }
        let c1 = vhost_shims_rdtsc()
        let t1 = nanoseconds()
        perOpNs.append(Double(t1 - t0) / Double(calls * perCall))
        perOpCycles.append(Double(c1 &- c0) / Double(calls * perCall))
    }
    perOpNs.sort()
    perOpCycles.sort()
    let r = Result(name: name, unit: unit, runs: runsWanted, medianNs: perOpNs[perOpNs.count / 2], minNs: perOpNs[0],
                   medianCycles: perOpCycles[perOpCycles.count / 2])
    results.append(r)
    let padded = name + String(repeating: " ", count: max(0, 58 - name.count))
    print("\(padded) \(fixed(r.medianNs)) ns/\(unit)  (min \(fixed(r.minNs)), \(fixed(r.medianCycles)) TSC cycles)")
}

func fixed(_ v: Double) -> String {
    let scaled = (v * 100).rounded() / 100
    var s = "\(scaled)"
    if let dot = s.firstIndex(of: ".") {
        let decimals = s.distance(from: dot, to: s.endIndex) - 1
        if decimals < 2 { s += String(repeating: "0", count: 2 - decimals) }
    }
    return s
}

// MARK: - benchmarks

let macA: UInt64 = 0x02_00_00_00_00_01
let macB: UInt64 = 0x02_00_00_00_00_02

func ringBenchmarks(frameLength: Int) throws {
    let guest = try FakeGuest()
    let frame = ethernetFrame(length: frameLength, destination: macB, source: macA)
    let tx = try FakeRing(guest: guest, base: 0x0, buffers: 0x10_0000, transmit: true, frame: frame, headerSize: 12)
    let rx = try FakeRing(guest: guest, base: 0x4000, buffers: 0x30_0000, transmit: false, frame: [], headerSize: 12)
    let fdb = MacLearningTable()
    fdb.learn(macB, port: 1, now: 1)
    let step = try SwitchingStep(source: tx.queue, destination: rx.queue, fdb: fdb)
    let buffers = step.buffers
    let burst = SwitchingStep.burstSize

    // Baseline on rings of their own: posting without consuming would break the real ones
    // (avail.idx more than the ring size ahead).
    let tx0 = try FakeRing(guest: guest, base: 0x8000, buffers: 0x10_0000, transmit: true, frame: frame, headerSize: 12)
    let rx0 = try FakeRing(guest: guest, base: 0xC000, buffers: 0x30_0000, transmit: false, frame: [], headerSize: 12)
    measure("guest posting only (baseline, \(frameLength) B)", unit: "pkt", perCall: burst) {
        tx0.post(burst)
        rx0.post(burst)
    }
    // Re-sync the device with the posted indices between benchmarks.
    func resync() {
        while tx.queue.dequeueBurst(into: buffers, maxCount: burst) > 0 {}
        while rx.queue.enqueueBurst(buffers, count: 1) > 0 {}
    }
    do {  // sanity check: one burst must go through both rings
        tx.post(burst)
        rx.post(burst)
        let n = tx.queue.dequeueBurst(into: buffers, maxCount: burst)
        let m = rx.queue.enqueueBurst(buffers, count: n)
        guard n == burst, m == burst else {
            fatalError("set-up check failed: dequeued \(n), enqueued \(m) of \(burst); tx \(tx.queue.settings.statistics.snapshot()) rx \(rx.queue.settings.statistics.snapshot())")
        }
    }

    measure("dequeue+enqueue burst 32, \(frameLength) B", unit: "pkt", perCall: burst) {
        tx.post(burst)
        rx.post(burst)
        let n = tx.queue.dequeueBurst(into: buffers, maxCount: burst)
        let m = rx.queue.enqueueBurst(buffers, count: n)
        sink &+= UInt64(m)
    }
    resync()

    // The whole per-burst switching path minus the poll loop: dequeue, learn + lookup,
    // counters, enqueue to the learned port (Dataplane's SwitchingStep: the poll thread's
    // forwarder and snapshot types, compiled in Dataplane as in vhost-switchd).
    measure("switch burst 32 (dequeue+learn+lookup+enqueue), \(frameLength) B", unit: "pkt", perCall: burst) {
        tx.post(burst)
        rx.post(burst)
        step.run(now: 1)
    }
    let sent = step.transmittedPackets(port: 1)
    if sent == 0 && loopSeconds == nil && (only.map { "switch burst".contains($0) } ?? true) {
        fatalError("the switch benchmark delivered nothing: its set-up is wrong")
    }
    withExtendedLifetime(step) {}
}

/// Issue 18's bar at the step's level: the switch burst with both ports on one access VLAN
/// (frames enter and leave untagged) and with both ports trunks of that VLAN (frames carry the
/// tag through), against the untagged default segment, each on fresh rings, the three
/// measured in turn `rounds` times so that drift hits them alike.
func segmentBenchmarks(frameLength: Int, rounds: Int = 3) throws {
    enum Variant: CaseIterable { case untagged, access, trunk }
    let vlan: UInt16 = 10
    func step(_ variant: Variant) throws -> (SwitchingStep, FakeRing, FakeRing) {
        let guest = try FakeGuest()
        var frame = ethernetFrame(length: frameLength, destination: macB, source: macA)
        var policy = PortPolicy()
        let fdb = MacLearningTable()
        switch variant {
        case .untagged:
            fdb.learn(macB, port: 1, now: 1)
        case .access:
            policy.vlan = vlan
            fdb.learn(macB, segment: Int(vlan), port: 1, now: 1)
        case .trunk:
            policy.trunk = [vlan]
            fdb.learn(macB, segment: Int(vlan), port: 1, now: 1)
            // The same length on the wire with the tag: TPID 0x8100, TCI = VLAN 10, then IPv4.
            frame.replaceSubrange(12..<14, with: [0x81, 0x00, 0x00, UInt8(vlan), 0x08, 0x00])
            frame.removeLast(4)
        }
        let tx = try FakeRing(guest: guest, base: 0x0, buffers: 0x10_0000, transmit: true, frame: frame, headerSize: 12)
        let rx = try FakeRing(guest: guest, base: 0x4000, buffers: 0x30_0000, transmit: false, frame: [], headerSize: 12)
        return (try SwitchingStep(source: tx.queue, destination: rx.queue, fdb: fdb, sourcePolicy: policy, destinationPolicy: policy), tx, rx)
    }
    let steps = try Variant.allCases.map { ($0, try step($0)) }
    let burst = SwitchingStep.burstSize
    for _ in 0..<rounds {
        for (variant, (step, tx, rx)) in steps {
            measure("segment switch burst 32, \(variant), \(frameLength) B", unit: "pkt", perCall: burst) {
                tx.post(burst)
                rx.post(burst)
                step.run(now: 1)
            }
        }
    }
    for (variant, (step, _, _)) in steps where step.transmittedPackets(port: 1) == 0 && loopSeconds == nil
        && (only.map { "segment switch burst".contains($0) } ?? true) {
        fatalError("the \(variant) segment benchmark delivered nothing: its set-up is wrong")
    }
    withExtendedLifetime(steps) {}
}

func macTableBenchmarks() {
    let table = MacLearningTable(capacity: 8192)
    let count = 4096
    let macs = UnsafeMutablePointer<UInt64>.allocate(capacity: count)
    var state: UInt64 = 0x1234_5678_9abc_def1
    for i in 0..<count {
        state = state &* 6364136223846793005 &+ 1442695040888963407
        let mac = (state >> 16) & 0xFEFF_FFFF_FFFF  // unicast
        macs[i] = mac
        table.learn(mac, port: i & 15, now: 1)
    }
    measure("MAC table lookup (hit, 4096 of 8192 entries)", unit: "lookup", perCall: count) {
        var s = 0
        for i in 0..<count { s &+= table.lookup(macs[i]) }
        sink &+= UInt64(bitPattern: Int64(s))
    }
    measure("MAC table lookup (miss)", unit: "lookup", perCall: count) {
        var s = 0
        for i in 0..<count { s &+= table.lookup(macs[i] ^ 0x0100_0000_0000) }
        sink &+= UInt64(bitPattern: Int64(s))
    }
    measure("MAC table learn (known MAC, same port)", unit: "learn", perCall: count) {
        for i in 0..<count { if table.learn(macs[i], port: i & 15, now: 1) != .unchanged { sink &+= 1 } }
    }
    macs.deallocate()
}

// MARK: - main

nonisolated(unsafe) var wantJSON = false
var arguments = CommandLine.arguments.dropFirst()
while let argument = arguments.popFirst() {
    switch argument {
    case "--json": wantJSON = true
    case "--runs": runsWanted = Int(arguments.popFirst() ?? "") ?? runsWanted
    case "--only": only = arguments.popFirst()
    case "--loop":
        loopSeconds = Double(arguments.popFirst() ?? "") ?? 10
        only = arguments.popFirst()
    default:
        print("usage: vhost-switch-micro [--json] [--runs N] [--only SUBSTRING] [--loop SECONDS SUBSTRING]")
        exit(2)
    }
}

do {
    try ringBenchmarks(frameLength: 64)
    try ringBenchmarks(frameLength: 1518)
    try segmentBenchmarks(frameLength: 64)
    macTableBenchmarks()
} catch {
    print("set-up failed: \(error)")
    exit(1)
}
if sink == 42 { print("") }  // keep results alive
if wantJSON {
    let entries = results.map {
        "{\"name\":\"\($0.name)\",\"unit\":\"\($0.unit)\",\"runs\":\($0.runs),\"median_ns\":\($0.medianNs),\"min_ns\":\($0.minNs),\"median_tsc_cycles\":\($0.medianCycles)}"
    }
    print("{\"benchmarks\":[\(entries.joined(separator: ","))]}")
}
