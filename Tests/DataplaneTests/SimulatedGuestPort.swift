import CVhostShims
import Synchronization
import XCTest
import TestSupport
import VhostUser
import Virtio
@testable import Dataplane

/// A guest with one queue pair on memfd memory, driven like a virtio-net driver would:
/// transmit descriptors and receive buffers are recycled forever, so a test can run
/// traffic for as long as it likes. Driver side only; the switch is the device. Its two rings
/// are the test kit's `SplitGuestDriverRing`s; what this adds is the recycling (one fixed
/// buffer per descriptor, posted again once used), which their bump allocator does not do.
final class SimulatedGuestPort: @unchecked Sendable {
    static let ringSize = 256
    static let headerSize = 12
    static let features = VirtioNetFeature.version1.mask

    let bufferSize: Int

    let mac: [UInt8]
    let fixture: GuestMemoryFixture
    let receiveRing: SplitGuestDriverRing
    let transmitRing: SplitGuestDriverRing
    let receiveQueue: SplitVirtqueue
    let transmitQueue: SplitVirtqueue
    private let receiveData: UInt64 = 0x40000
    private let transmitData: UInt64
    private var transmitPosted: UInt16 = 0
    private var transmitCompleted: UInt16 = 0
    private var receivePosted: UInt16 = 0
    /// Frames received so far (driver side).
    private(set) var received = 0
    private(set) var receivedFrames: [[UInt8]] = []
    /// The virtio-net header bytes in front of each kept frame.
    private(set) var receivedHeaders: [[UInt8]] = []
    var keepFrames = false

    /// `features` as negotiated (VERSION_1 plus any offloads); `bufferSize` per descriptor
    /// (room for GSO super-frames when the guest takes them whole).
    init(mac: [UInt8], features: UInt64 = SimulatedGuestPort.features, bufferSize: Int = 2048) throws {
        self.mac = mac
        self.bufferSize = bufferSize
        transmitData = 0x40000 + UInt64(Self.ringSize * bufferSize)
        let dataEnd: Int = 0x40000 + 2 * Self.ringSize * bufferSize
        let megabyte: Int = 1 << 20
        fixture = try GuestMemoryFixture(size: UInt64((dataEnd + megabyte - 1) / megabyte * megabyte))
        receiveRing = try SplitGuestDriverRing(fixture: fixture, size: Self.ringSize, ringAddress: 0)
        transmitRing = try SplitGuestDriverRing(fixture: fixture, size: Self.ringSize, ringAddress: 0x20000)
        receiveQueue = SplitVirtqueue(layout: try receiveRing.layout(),
                                      settings: NegotiatedRingSettings(memory: fixture.memory, negotiatedFeatures: features),
                                      lastAvailIndex: 0)
        transmitQueue = SplitVirtqueue(layout: try transmitRing.layout(),
                                       settings: NegotiatedRingSettings(memory: fixture.memory, negotiatedFeatures: features),
                                       lastAvailIndex: 0)
        // Every receive descriptor is one writable buffer; all are posted at once.
        for i in 0..<Self.ringSize {
            receiveRing.writeDescriptor(i, address: receiveData + UInt64(i * bufferSize), length: UInt32(bufferSize), flags: SplitGuestDriverRing.write)
            receiveRing.writeAvailSlot(UInt16(i), head: UInt16(i))
        }
        receivePosted = UInt16(Self.ringSize)
        receiveRing.setAvailIndex(receivePosted)
    }

    var activeQueues: [ActiveQueue] {
        [ActiveQueue(vringIndex: 0, queue: .split(receiveQueue), kickDescriptor: -1),
         ActiveQueue(vringIndex: 1, queue: .split(transmitQueue), kickDescriptor: -1)]
    }

    /// Posts up to `count` frames to `destination` while transmit descriptors are free.
    @discardableResult
    func transmit(to destination: [UInt8], count: Int, length: Int = 64) -> Int {
        reclaimTransmitted()
        var sent = 0
        while sent < count && transmitPosted &- transmitCompleted < UInt16(Self.ringSize) {
            let slot = Int(transmitPosted) % Self.ringSize
            let address = transmitData + UInt64(slot * bufferSize)
            var frame = [UInt8](repeating: 0, count: Self.headerSize) + destination + mac + [0x88, 0xB5]
            frame += [UInt8](repeating: UInt8(truncatingIfNeeded: slot), count: max(0, length - 14))
            fixture.write(frame, at: address)
            transmitRing.writeDescriptor(slot, address: address, length: UInt32(frame.count))
            transmitRing.writeAvailSlot(transmitPosted, head: UInt16(slot))
            transmitPosted &+= 1
            sent += 1
        }
        transmitRing.setAvailIndex(transmitPosted)
        return sent
    }

    /// Posts one whole frame behind `header` (its 12 bytes as the driver wrote them).
    func transmit(frame: [UInt8], header: VirtioNetHeader) {
        transmit(frames: [frame], header: header)
    }

    /// Posts whole frames and publishes them with one avail index store, so the switch
    /// takes them in one burst.
    func transmit(frames: [[UInt8]], header: VirtioNetHeader = VirtioNetHeader()) {
        reclaimTransmitted()
        for frame in frames {
            precondition(transmitPosted &- transmitCompleted < UInt16(Self.ringSize) && frame.count + Self.headerSize <= bufferSize)
            let slot = Int(transmitPosted) % Self.ringSize
            let address = transmitData + UInt64(slot * bufferSize)
            var bytes = [UInt8](repeating: 0, count: Self.headerSize)
            bytes.withUnsafeMutableBytes { header.store(to: $0.baseAddress!, size: Self.headerSize) }
            fixture.write(bytes + frame, at: address)
            transmitRing.writeDescriptor(slot, address: address, length: UInt32(Self.headerSize + frame.count))
            transmitRing.writeAvailSlot(transmitPosted, head: UInt16(slot))
            transmitPosted &+= 1
        }
        transmitRing.setAvailIndex(transmitPosted)
    }

    private func reclaimTransmitted() {
        transmitCompleted = transmitRing.usedIndex
    }

    /// Takes what the device delivered and gives the buffers back.
    @discardableResult
    func collect() -> Int {
        var count = 0
        for entry in receiveRing.takeUsedEntries() {
            let id = Int(entry.id)
            if keepFrames {
                let buffer = receiveData + UInt64(id * bufferSize)
                receivedHeaders.append(fixture.read(at: buffer, count: Self.headerSize))
                receivedFrames.append(fixture.read(at: buffer + UInt64(Self.headerSize), count: Int(entry.length) - Self.headerSize))
            }
            receiveRing.writeAvailSlot(receivePosted, head: UInt16(id))
            receivePosted &+= 1
            count += 1
        }
        receiveRing.setAvailIndex(receivePosted)
        received += count
        return count
    }

    /// Waits until `count` more frames arrived (or the timeout passes); returns how many did.
    func waitForFrames(_ count: Int, timeout: Double = 2) -> Int {
        let deadline = MonotonicClockForTests.now() + timeout
        var got = 0
        while got < count && MonotonicClockForTests.now() < deadline {
            got += collect()
            if got < count { usleep(200) }
        }
        return got
    }
}

/// A busy-polling switch per test, and guests attached to it as ports.
class SimulatedGuestSwitchTestCase: XCTestCase {
    var fabric: Switch!
    /// Poll threads of the switch under test (subclasses may ask for more).
    var pollThreads: Int { 1 }
    /// How often the switch may rebalance its receive queues (0: never).
    var rxqRebalanceIntervalSeconds: Int { Switch.Configuration().rxqRebalanceIntervalSeconds }

    override func setUpWithError() throws {
        var configuration = Switch.Configuration()
        configuration.busyPoll = true
        configuration.pollThreads = pollThreads
        configuration.rxqRebalanceIntervalSeconds = rxqRebalanceIntervalSeconds
        fabric = try Switch(configuration: configuration)
        try fabric.start()
    }

    override func tearDown() {
        fabric.stop()
        fabric = nil
    }

    func attach(_ guest: SimulatedGuestPort, name: String) throws -> Int {
        let id = try XCTUnwrap(fabric.addPort(name: name))
        fabric.setQueues(portID: id, queues: guest.activeQueues)
        return id
    }

    /// A guest with MAC 02:00:00:00:00:`last` on a new port with `policy` (set before its
    /// rings), keeping the frames it receives.
    func guest(_ last: UInt8, name: String, policy: PortPolicy = PortPolicy()) throws -> (guest: SimulatedGuestPort, id: Int) {
        let guest = try SimulatedGuestPort(mac: [2, 0, 0, 0, 0, last])
        guest.keepFrames = true
        let id = try XCTUnwrap(fabric.addPort(name: name))
        fabric.setPolicy(portID: id, policy)
        fabric.setQueues(portID: id, queues: guest.activeQueues)
        return (guest, id)
    }
}

enum MonotonicClockForTests {
    static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }
}

/// Two well-behaved neighbours, c and d, that must keep forwarding while a hostile port
/// acts (docs/UNTRUSTED-INPUT.md): d is learned first; after each hostile step `send`
/// has c send 5 frames to d, and `check` asserts d got every one of them.
struct NeighbourPair {
    let c: (guest: SimulatedGuestPort, id: Int)
    let d: (guest: SimulatedGuestPort, id: Int)
    private(set) var sent = 0

    init(_ test: SimulatedGuestSwitchTestCase) throws {
        c = try test.guest(0xC, name: "c")
        d = try test.guest(0xD, name: "d")
        d.guest.transmit(to: SegmentFrames.mac(0xC), count: 1)
        XCTAssertEqual(c.guest.waitForFrames(1), 1, "the neighbours learn each other")
    }

    mutating func send() { sent += c.guest.transmit(to: SegmentFrames.mac(0xD), count: 5) }

    func check(file: StaticString = #filePath, line: UInt = #line) {
        let deadline = MonotonicClockForTests.now() + 2
        var fromC = 0
        repeat {
            _ = d.guest.waitForFrames(1, timeout: 0.05)
            fromC = d.guest.receivedFrames.filter { Array($0[6..<12]) == SegmentFrames.mac(0xC) }.count
        } while fromC < sent && MonotonicClockForTests.now() < deadline
        XCTAssertGreaterThan(sent, 0, file: file, line: line)
        XCTAssertEqual(fromC, sent, "the neighbours' frames while the hostile port acted", file: file, line: line)
    }
}
