import CVhostShims

/// The switch-level counters of every port, one block per poll thread: a thread writes
/// only its own block (relaxed load + store, no shared cache lines between threads), and
/// readers add the blocks up. Ring-level counts (packets, bytes, ring drops) live in the
/// queues' own statistics.
final class PortCounters: @unchecked Sendable {
    enum Counter: Int, CaseIterable {
        case rxPackets, rxBytes, rxBroadcast, rxMulticast
        case size64, size65To127, size128To255, size256To511, size512To1023, size1024To1518, size1519Plus
        case txPackets, txDropped
        case dropsRingNotReady, dropsMTUExceeded, dropsMACTableFull, dropsHairpin
        case offloadChecksumsCompleted, offloadFramesSegmented, offloadSegments
        case dropsOffloadMalformed
    }

    static let stride = (Counter.allCases.count + 7) & ~7  // whole cache lines per port
    let maxPorts: Int
    // Unsafe: maxPorts * stride counters, allocated once, zeroed, freed in deinit.
    let base: UnsafeMutablePointer<UInt64>

    init(maxPorts: Int) {
        self.maxPorts = maxPorts
        let raw = UnsafeMutableRawPointer.allocate(byteCount: maxPorts * Self.stride * 8, alignment: 64)
        raw.initializeMemory(as: UInt8.self, repeating: 0, count: maxPorts * Self.stride * 8)
        base = raw.bindMemory(to: UInt64.self, capacity: maxPorts * Self.stride)
    }

    deinit { UnsafeMutableRawPointer(base).deallocate() }

    /// Poll thread only: adds to its own block.
    @inline(__always)
    func add(_ counter: Counter, port: Int, _ amount: UInt64) {
        // Unsafe: port < maxPorts (port ids are allocated below it), counter < stride.
        let slot = base + (port &* Self.stride &+ counter.rawValue)
        vhost_shims_store_relaxed_u64(slot, vhost_shims_load_relaxed_u64(slot) &+ amount)
    }

    func value(_ counter: Counter, port: Int) -> UInt64 {
        vhost_shims_load_relaxed_u64(base + (port * Self.stride + counter.rawValue))
    }

    /// Control side, after a grace period (no thread touches the port any more).
    func reset(port: Int) {
        for counter in Counter.allCases { vhost_shims_store_relaxed_u64(base + (port * Self.stride + counter.rawValue), 0) }
    }

    @inline(__always)
    static func sizeBucket(_ length: Int) -> Counter {
        switch length {
        case ...64: .size64
        case ...127: .size65To127
        case ...255: .size128To255
        case ...511: .size256To511
        case ...1023: .size512To1023
        case ...1518: .size1024To1518
        default: .size1519Plus
        }
    }
}

/// A port's switch-level counters summed over poll threads.
public struct PortSwitchStatistics: Sendable, Equatable {
    public var rxPackets: UInt64 = 0
    public var rxBytes: UInt64 = 0
    public var rxBroadcast: UInt64 = 0
    public var rxMulticast: UInt64 = 0
    /// Received frames by size: 64, 65-127, 128-255, 256-511, 512-1023, 1024-1518, 1519+.
    public var sizeHistogram: [UInt64] = Array(repeating: 0, count: 7)
    /// Frames handed to this port's transmit side, and those it could not take.
    public var txPackets: UInt64 = 0
    public var txDropped: UInt64 = 0
    public var dropsRingNotReady: UInt64 = 0
    public var dropsMTUExceeded: UInt64 = 0
    public var dropsMACTableFull: UInt64 = 0
    /// Frames whose destination was learned on the port they came in on.
    public var dropsHairpin: UInt64 = 0
    /// Offload requests this port did not negotiate, done by the switch before sending
    /// here: partial checksums completed, super-frames segmented and the segments made.
    public var offloadChecksumsCompleted: UInt64 = 0
    public var offloadFramesSegmented: UInt64 = 0
    public var offloadSegments: UInt64 = 0
    /// Frames for this port dropped because their offload header did not match the frame.
    public var dropsOffloadMalformed: UInt64 = 0

    public static let sizeBucketNames = ["64", "65-127", "128-255", "256-511", "512-1023", "1024-1518", "1519+"]

    init() {}

    init(summing blocks: [PortCounters], port: Int) {
        func sum(_ counter: PortCounters.Counter) -> UInt64 { blocks.reduce(0) { $0 &+ $1.value(counter, port: port) } }
        rxPackets = sum(.rxPackets)
        rxBytes = sum(.rxBytes)
        rxBroadcast = sum(.rxBroadcast)
        rxMulticast = sum(.rxMulticast)
        sizeHistogram = [sum(.size64), sum(.size65To127), sum(.size128To255), sum(.size256To511),
                         sum(.size512To1023), sum(.size1024To1518), sum(.size1519Plus)]
        txPackets = sum(.txPackets)
        txDropped = sum(.txDropped)
        dropsRingNotReady = sum(.dropsRingNotReady)
        dropsMTUExceeded = sum(.dropsMTUExceeded)
        dropsMACTableFull = sum(.dropsMACTableFull)
        dropsHairpin = sum(.dropsHairpin)
        offloadChecksumsCompleted = sum(.offloadChecksumsCompleted)
        offloadFramesSegmented = sum(.offloadFramesSegmented)
        offloadSegments = sum(.offloadSegments)
        dropsOffloadMalformed = sum(.dropsOffloadMalformed)
    }
}
