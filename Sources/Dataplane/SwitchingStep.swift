import VhostSystem
import Virtio

/// One poll-thread switching step between two guest rings, outside any `Switch`: dequeue a
/// burst from `source`, then `BurstForwarder` (learn, look up, count, enqueue) with a
/// two-port snapshot built as `Switch` builds them. It is what Benchmarks/Micro times, and
/// it lives here, not there, so the benchmark uses the poll thread's internal types through
/// a public door and a change to those types breaks `swift build`, not only the benchmark.
/// `@_spi(Benchmarks)`: not part of the API the executables use.
@_spi(Benchmarks)
public final class SwitchingStep {
    public static var burstSize: Int { PacketBufferPool.burstSize }

    private let pool: PacketBufferPool
    private let counters: PortCounters
    private let forwarder: BurstForwarder
    private let snapshot: PollSnapshot

    /// `burstSize` packet buffers the step dequeues into (also usable on their own, for
    /// dequeue+enqueue without the switch).
    public var buffers: UnsafeMutablePointer<PacketBuffer> { pool.buffers }

    /// Port 0 is the guest transmitting through `source`, port 1 the guest receiving through
    /// `destination`; `fdb` says where MAC addresses live (in the segment the policies put
    /// the frames in: 0 by default). Both queues are kept alive.
    public init(source: SplitVirtqueue, destination: SplitVirtqueue, fdb: MacLearningTable,
                sourcePolicy: PortPolicy = PortPolicy(), destinationPolicy: PortPolicy = PortPolicy()) throws(SystemError) {
        pool = try PacketBufferPool()
        counters = PortCounters(rows: 4)
        forwarder = BurstForwarder(fdb: fdb, pool: pool, resolver: try OffloadResolver(), counters: counters,
                                   segmentCounters: SegmentCounters(), limiters: PortLimiters(maxPorts: 4))
        snapshot = PollSnapshot(
            queues: [PolledQueue(driver: PortDriver(.split(source)), portID: 0, wakeDescriptor: -1, maxFrameLength: 65536)],
            targets: [TransmitTarget(driver: nil, lock: nil, isPresent: true),
                      TransmitTarget(driver: PortDriver(.split(destination)), lock: nil, isPresent: true)],
            presentPorts: [0, 1],
            rules: PortRulesTable([.init(policy: sourcePolicy, generation: 1, share: (1, 1)),
                                   .init(policy: destinationPolicy, generation: 2, share: (0, 0))]),
            owners: [source, destination])
    }

    deinit { forwarder.release() }

    /// One burst, as `PollThread` runs it for one queue: returns the frames dequeued.
    @discardableResult
    public func run(now: UInt32) -> Int {
        let polled = snapshot.queues[0]
        let count = polled.driver?.receiveBurst(into: forwarder.pool.buffers, maxCount: PacketBufferPool.burstSize) ?? 0
        if count > 0 { forwarder.forward(count: count, from: polled, snapshot: snapshot, now: now, cycles: MonotonicClock.cycles()) }
        return count
    }

    /// Frames the switch sent to port 0 or 1 so far (its transmit counter).
    public func transmittedPackets(port: Int) -> UInt64 { counters.value(.txPackets, of: port) }
}
