import TestSupport
import VhostSystem
import XCTest
@testable import Virtio

/// A packed ring in fixture memory with the device side under test, host packet buffers and
/// a call eventfd (the packed twin of `QueueHarness`).
final class PackedQueueHarness {
    static let modern: UInt64 = VirtioNetFeature.version1.mask | VirtioNetFeature.ringPacked.mask

    let fixture: GuestMemoryFixture
    let ring: PackedGuestDriverRing
    let queue: PackedVirtqueue
    let statistics = VirtqueueStatistics()
    let call: EventFD
    let bufferMemory: UnsafeMutableRawPointer
    let buffers: UnsafeMutablePointer<PacketBuffer>
    let bufferCount = 32
    let bufferCapacity: Int
    var headerSize: Int { VirtioNetHeader.size(negotiated: queue.settings.negotiatedFeatures) }

    init(features: UInt64 = PackedQueueHarness.modern, size: Int = 16, fixture: GuestMemoryFixture? = nil,
         bufferCapacity: Int = 2048, dirtyLog: DirtyLog? = nil, logRing: Bool = false,
         ringAddress: UInt64 = 0, dataAddress: UInt64 = 0x10000, dataSize: UInt64 = 0x40000,
         lastAvailIndex: UInt16 = 0, availWrapCounter: Bool = true) throws {
        self.fixture = try fixture ?? GuestMemoryFixture()
        ring = try PackedGuestDriverRing(fixture: self.fixture, size: size, ringAddress: ringAddress, dataAddress: dataAddress, dataSize: dataSize)
        call = try EventFD()
        queue = PackedVirtqueue(layout: try ring.layout(logRing: logRing),
                                settings: NegotiatedRingSettings(memory: self.fixture.memory, negotiatedFeatures: features,
                                                                 callDescriptor: call.rawValue, statistics: statistics, dirtyLog: dirtyLog),
                                lastAvailIndex: lastAvailIndex, availWrapCounter: availWrapCounter)
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

    func dequeue(max: Int = 32) -> [[UInt8]] {
        let count = queue.dequeueBurst(into: buffers, maxCount: max)
        return (0..<count).map { frame(at: $0) }
    }

    func frame(at index: Int) -> [UInt8] {
        let buffer = buffers[index]
        return Array(UnsafeRawBufferPointer(start: buffer.data, count: buffer.length))
    }

    func enqueue(_ frames: [[UInt8]], header: VirtioNetHeader = VirtioNetHeader()) -> Int {
        for (i, frame) in frames.enumerated() {
            frame.withUnsafeBytes { (buffers + i).pointee.data.copyMemory(from: $0.baseAddress!, byteCount: frame.count) }
            buffers[i].length = frame.count
            buffers[i].header = header
        }
        return queue.enqueueBurst(buffers, count: frames.count)
    }

    var stats: VirtqueueStatisticsSnapshot { statistics.snapshot() }

    func notifications() -> UInt64 { call.drain() }
}
