import TestSupport
import VhostSystem
import XCTest
@testable import Virtio

/// A split ring in fixture memory with the device side under test, host packet buffers and
/// a call eventfd.
final class QueueHarness {
    static let modern: UInt64 = VirtioNetFeature.version1.mask
    static let legacy: UInt64 = 0

    let fixture: GuestMemoryFixture
    let ring: SplitGuestDriverRing
    let queue: SplitVirtqueue
    let statistics = VirtqueueStatistics()
    let call: EventFD
    let bufferMemory: UnsafeMutableRawPointer
    let buffers: UnsafeMutablePointer<PacketBuffer>
    let bufferCount = 32
    let bufferCapacity: Int
    var headerSize: Int { VirtioNetHeader.size(negotiated: queue.settings.negotiatedFeatures) }

    init(features: UInt64 = QueueHarness.modern, size: Int = 16, fixture: GuestMemoryFixture? = nil,
         bufferCapacity: Int = 2048, dirtyLog: DirtyLog? = nil, logUsedRing: Bool = false,
         ringAddress: UInt64 = 0, dataAddress: UInt64 = 0x10000, dataSize: UInt64 = 0x40000) throws {
        self.fixture = try fixture ?? GuestMemoryFixture()
        ring = try SplitGuestDriverRing(fixture: self.fixture, size: size, ringAddress: ringAddress, dataAddress: dataAddress, dataSize: dataSize)
        call = try EventFD()
        queue = SplitVirtqueue(layout: try ring.layout(logUsedRing: logUsedRing),
                               settings: NegotiatedRingSettings(memory: self.fixture.memory, negotiatedFeatures: features,
                                                                callDescriptor: call.rawValue, statistics: statistics, dirtyLog: dirtyLog),
                               lastAvailIndex: 0)
        self.bufferCapacity = bufferCapacity
        bufferMemory = .allocate(byteCount: bufferCount * bufferCapacity, alignment: 64)
        buffers = .allocate(capacity: bufferCount)
        for i in 0..<bufferCount {
            (buffers + i).initialize(to: PacketBuffer(data: bufferMemory + i * bufferCapacity, capacity: bufferCapacity))
        }
    }

    deinit {
        buffers.deinitialize(count: bufferCount)
        buffers.deallocate()
        bufferMemory.deallocate()
    }

    /// Dequeues and returns the frames as byte arrays.
    func dequeue(max: Int = 32) -> [[UInt8]] {
        let count = queue.dequeueBurst(into: buffers, maxCount: max)
        return (0..<count).map { frame(at: $0) }
    }

    func frame(at index: Int) -> [UInt8] {
        let buffer = buffers[index]
        return Array(UnsafeRawBufferPointer(start: buffer.data, count: buffer.length))
    }

    /// Loads frames into the host buffers and enqueues them.
    func enqueue(_ frames: [[UInt8]], header: VirtioNetHeader = VirtioNetHeader()) -> Int {
        for (i, frame) in frames.enumerated() {
            frame.withUnsafeBytes { (buffers + i).pointee.data.copyMemory(from: $0.baseAddress!, byteCount: frame.count) }
            buffers[i].length = frame.count
            buffers[i].header = header
        }
        return queue.enqueueBurst(buffers, count: frames.count)
    }

    var stats: VirtqueueStatisticsSnapshot { statistics.snapshot() }

    /// How many call eventfd writes happened since the last check (reads and clears it).
    func notifications() -> UInt64 { call.drain() }

    static func frame(_ length: Int, seed: UInt8 = 1) -> [UInt8] {
        (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ Int(seed)) }
    }
}
