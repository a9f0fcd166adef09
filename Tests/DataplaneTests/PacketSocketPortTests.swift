import Foundation
import Glibc
import Synchronization
import XCTest
@testable import Dataplane
import VhostSystem
import Virtio

/// A veth pair with the peer end in a fresh network namespace (10.200/16 style isolation:
/// nothing here is ever sent outside that pair). Needs root and `ip`.
private final class PortVeth {
    let namespace: String
    let hostName: String
    let peerName: String
    let ip: String
    private static let counter = Mutex(0)

    static func skipUnlessPossible() throws -> String {
        if getuid() != 0 {
            print("skipping: AF_PACKET/veth tests need root")
            throw XCTSkip("AF_PACKET/veth tests need root")
        }
        guard let ip = ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"].first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            print("skipping: the ip tool (iproute2) is missing")
            throw XCTSkip("the ip tool (iproute2) is missing")
        }
        return ip
    }

    init(ip: String) throws {
        self.ip = ip
        let serial = Self.counter.withLock { $0 += 1; return $0 }
        let tag = "\(getpid() % 100_000)p\(serial)"
        namespace = "vsw-ptest-\(tag)"
        hostName = "vph\(tag)"
        peerName = "vpp\(tag)"
        try run(["netns", "add", namespace])
        do { try create() } catch { destroy(); throw error }
    }

    func create() throws {
        try run(["link", "add", hostName, "type", "veth", "peer", "name", peerName])
        try run(["link", "set", peerName, "netns", namespace])
        try run(["link", "set", hostName, "up"])
        try run(["netns", "exec", namespace, ip, "link", "set", peerName, "up"])
    }

    func destroy() {
        try? run(["link", "del", hostName], quiet: true)
        try? run(["netns", "del", namespace], quiet: true)
    }

    func run(_ arguments: [String], quiet: Bool = false) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: ip)
        process.arguments = arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        if process.terminationStatus != 0 {
            if !quiet { print("ip \(arguments.joined(separator: " ")) failed: \(String(decoding: data, as: UTF8.self))") }
            throw SystemError("ip \(arguments.joined(separator: " "))", errno: EIO)
        }
    }

    func openPeerPort() throws -> PacketSocketPort {
        try NetworkNamespace.run(path: "/var/run/netns/\(namespace)") { () throws(SystemError) -> PacketSocketPort in
            try PacketSocketPort.open(interface: peerName)
        }
    }
}

/// A burst's worth of packet buffers in one allocation.
private final class TestBuffers {
    let count: Int
    let storage: UnsafeMutableRawPointer
    let buffers: UnsafeMutablePointer<PacketBuffer>

    init(count: Int = 32, capacity: Int = 2048) {
        self.count = count
        storage = .allocate(byteCount: count * capacity, alignment: 64)
        buffers = .allocate(capacity: count)
        for i in 0..<count { (buffers + i).initialize(to: PacketBuffer(data: storage + i * capacity, capacity: capacity)) }
    }

    deinit {
        buffers.deinitialize(count: count)
        buffers.deallocate()
        storage.deallocate()
    }

    func load(_ frames: [[UInt8]]) {
        for (i, frame) in frames.enumerated() {
            frame.withUnsafeBytes { buffers[i].data.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
            buffers[i].length = frame.count
            buffers[i].header = VirtioNetHeader()
        }
    }

    func bytes(_ i: Int) -> [UInt8] {
        Array(UnsafeRawBufferPointer(start: buffers[i].data, count: buffers[i].length))
    }
}

private enum Frames {
    static let etherType: [UInt8] = [0x88, 0xB5]
    static let peerMAC: [UInt8] = [0x02, 0x00, 0x00, 0xC8, 0x01, 0x02]
    static let hostMAC: [UInt8] = [0x02, 0x00, 0x00, 0xC8, 0x01, 0x01]

    static func make(length: Int, marker: UInt32, sequence: Int, destination: [UInt8] = hostMAC, source: [UInt8] = peerMAC) -> [UInt8] {
        var frame = destination + source + etherType
        withUnsafeBytes(of: marker.bigEndian) { frame += $0 }
        withUnsafeBytes(of: UInt32(sequence).bigEndian) { frame += $0 }
        var byte = UInt8(truncatingIfNeeded: sequence &* 17 &+ 3)
        while frame.count < length { frame.append(byte); byte = byte &* 29 &+ 11 }
        return frame
    }

    static func matches(_ frame: [UInt8], _ marker: UInt32) -> Bool {
        guard frame.count >= 18, Array(frame[12..<14]) == etherType else { return false }
        return frame[14..<18].reduce(UInt32(0)) { $0 << 8 | UInt32($1) } == marker
    }
}

extension PacketSocketPort {
    /// Receives bursts until `count` frames with `marker` arrived or `timeout` passed.
    fileprivate func collect(_ marker: UInt32, count: Int, timeout: Double = 2.0, capacity: Int = 2048) -> [[UInt8]] {
        let buffers = TestBuffers(capacity: capacity)
        var frames: [[UInt8]] = []
        let deadline = Date().addingTimeInterval(timeout)
        while frames.count < count && Date() < deadline {
            let n = receiveBurst(into: buffers.buffers, maxCount: buffers.count)
            for i in 0..<n {
                XCTAssertEqual(buffers.buffers[i].header, VirtioNetHeader())
                let frame = buffers.bytes(i)
                if Frames.matches(frame, marker) { frames.append(frame) }
            }
            if n == 0 { usleep(1000) }
        }
        return frames
    }

    fileprivate func send(_ frames: [[UInt8]]) -> Int {
        let buffers = TestBuffers()
        buffers.load(frames)
        return transmitBurst(buffers.buffers, count: frames.count)
    }

    fileprivate func waitForLink(up: Bool, timeout: Double = 3.0) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while linkIsUp() != up && Date() < deadline { usleep(10_000) }
        return linkIsUp() == up
    }
}

final class PacketSocketPortTests: XCTestCase {
    private var veth: PortVeth?

    override func setUpWithError() throws {
        veth = try PortVeth(ip: PortVeth.skipUnlessPossible())
    }

    override func tearDown() {
        veth?.destroy()
        veth = nil
    }

    private func openPorts() throws -> (host: PacketSocketPort, peer: PacketSocketPort) {
        let veth = try XCTUnwrap(veth)
        let host = try PacketSocketPort.open(interface: veth.hostName)
        let peer = try veth.openPeerPort()
        XCTAssertTrue(host.waitForLink(up: true), "veth carrier never came up")
        return (host, peer)
    }

    func testReceiveBurstFillsBuffersByteExact() throws {
        let (host, peer) = try openPorts()
        let marker = UInt32.random(in: 1...UInt32.max)
        let sent = (0..<20).map { Frames.make(length: 60 + $0 * 70, marker: marker, sequence: $0) }
        XCTAssertEqual(peer.send(sent), sent.count)
        let received = host.collect(marker, count: sent.count)
        XCTAssertEqual(received, sent)
        let stats = host.statistics.snapshot()
        XCTAssertGreaterThanOrEqual(stats.receivedPackets, UInt64(sent.count))
        XCTAssertGreaterThanOrEqual(stats.receivedBytes, UInt64(sent.reduce(0) { $0 + $1.count }))
        XCTAssertEqual(stats.receiveDrops, 0)
        let peerStats = peer.statistics.snapshot()
        XCTAssertEqual(peerStats.transmittedPackets, UInt64(sent.count))
        XCTAssertEqual(peerStats.transmittedBytes, UInt64(sent.reduce(0) { $0 + $1.count }))
        XCTAssertEqual(peerStats.transmitDrops, 0)
        XCTAssertEqual(peerStats.transmitSendErrors, 0)
    }

    func testFramesLargerThanTheBufferAreDroppedAndCounted() throws {
        let (host, peer) = try openPorts()
        let marker = UInt32.random(in: 1...UInt32.max)
        let small = Frames.make(length: 200, marker: marker, sequence: 0)
        let big = Frames.make(length: 1400, marker: marker, sequence: 1)
        let last = Frames.make(length: 256, marker: marker, sequence: 2)
        XCTAssertEqual(peer.send([small, big, last]), 3)
        XCTAssertEqual(host.collect(marker, count: 2, capacity: 256), [small, last])
        XCTAssertEqual(host.statistics.snapshot().receiveDropsTooLarge, 1)
    }

    func testTransmitBurstReachesThePeerAndNotOurOwnReceive() throws {
        let (host, peer) = try openPorts()
        let marker = UInt32.random(in: 1...UInt32.max)
        let sent = (0..<32).map { Frames.make(length: 64 + $0 * 45, marker: marker, sequence: $0, destination: Frames.peerMAC, source: Frames.hostMAC) }
        XCTAssertEqual(host.send(sent), 32)
        XCTAssertEqual(peer.collect(marker, count: sent.count), sent)
        XCTAssertEqual(host.collect(marker, count: 1, timeout: 0.1), [], "our own transmissions came back")
        XCTAssertEqual(host.statistics.snapshot().transmittedPackets, 32)
    }

    func testOffloadRequestsAndBadLengthsAreDroppedOnTransmit() throws {
        let (host, peer) = try openPorts()
        let marker = UInt32.random(in: 1...UInt32.max)
        let good = Frames.make(length: 100, marker: marker, sequence: 0, destination: Frames.peerMAC)
        let buffers = TestBuffers()
        buffers.load([good, good, good, good, good])
        buffers.buffers[1].header.flags = VirtioNetHeader.flagNeedsChecksum
        buffers.buffers[2].header.gsoType = VirtioNetHeader.gsoTCPv4
        buffers.buffers[3].length = 10
        buffers.buffers[4].length = 1600
        XCTAssertEqual(host.transmitBurst(buffers.buffers, count: 5), 1)
        XCTAssertEqual(peer.collect(marker, count: 1), [good])
        let stats = host.statistics.snapshot()
        XCTAssertEqual(stats.transmitDropsUnsupportedOffload, 2)
        XCTAssertEqual(stats.transmitDropsTooShort, 1)
        XCTAssertEqual(stats.transmitDropsTooLarge, 1)
        XCTAssertEqual(stats.transmittedPackets, 1)
        XCTAssertEqual(stats.transmittedBytes, 100)
    }

    func testPendingFramesAndPollDescriptorWakeTheSleeper() throws {
        let (host, peer) = try openPorts()
        _ = host.collect(0, count: Int.max, timeout: 0.05)  // drain link noise
        XCTAssertFalse(host.hasPendingFrames())
        let epoll = try Epoll()
        try epoll.add(host.pollDescriptor, events: Epoll.input | Epoll.edgeTriggered, token: 7)
        var events: [Epoll.Event] = []
        let marker = UInt32.random(in: 1...UInt32.max)
        XCTAssertEqual(peer.send([Frames.make(length: 90, marker: marker, sequence: 0)]), 1)
        try epoll.wait(into: &events, timeoutMilliseconds: 1000)
        XCTAssertEqual(events.map(\.token), [7], "the block retire timer must wake epoll")
        XCTAssertTrue(host.hasPendingFrames())
        XCTAssertEqual(host.collect(marker, count: 1).count, 1)
        XCTAssertFalse(host.hasPendingFrames())
    }

    func testLinkDownIsSeenAndTransmitCountsTheError() throws {
        let veth = try XCTUnwrap(veth)
        let (host, _) = try openPorts()
        XCTAssertTrue(host.linkIsUp())
        try veth.run(["link", "set", veth.hostName, "down"])
        XCTAssertFalse(host.linkIsUp())
        XCTAssertEqual(host.linkState(), .down)
        XCTAssertEqual(host.send([Frames.make(length: 64, marker: 1, sequence: 0)]), 0)
        let stats = host.statistics.snapshot()
        XCTAssertEqual(stats.transmitSendErrors, 1)
        XCTAssertEqual(stats.transmitDropsKernel, 1)
        XCTAssertEqual(stats.transmittedPackets, 0)
        try veth.run(["link", "set", veth.hostName, "up"])
        XCTAssertTrue(host.waitForLink(up: true))
        XCTAssertEqual(host.send([Frames.make(length: 64, marker: 1, sequence: 1)]), 1)
    }

    func testRecreatedInterfaceIsReopenedWithItsStatistics() throws {
        let veth = try XCTUnwrap(veth)
        let (host, peer) = try openPorts()
        let marker = UInt32.random(in: 1...UInt32.max)
        XCTAssertEqual(peer.send([Frames.make(length: 70, marker: marker, sequence: 0)]), 1)
        XCTAssertEqual(host.collect(marker, count: 1).count, 1)

        try veth.run(["link", "del", veth.hostName])
        XCTAssertEqual(host.linkState(), .missing)
        XCTAssertThrowsError(try host.reopened(), "no interface of that name yet")
        try veth.create()
        guard case .replaced = host.linkState() else { return XCTFail("expected .replaced, got \(host.linkState())") }

        let reopened = try host.reopened()
        XCTAssertTrue(reopened.statistics === host.statistics)
        XCTAssertNotEqual(reopened.interfaceIndex, host.interfaceIndex)
        XCTAssertEqual(reopened.linkState(), .up)
        let newPeer = try veth.openPeerPort()
        XCTAssertTrue(reopened.waitForLink(up: true))
        let again = UInt32.random(in: 1...UInt32.max)
        let frame = Frames.make(length: 80, marker: again, sequence: 1)
        XCTAssertEqual(newPeer.send([frame]), 1)
        XCTAssertEqual(reopened.collect(again, count: 1), [frame])
        XCTAssertGreaterThanOrEqual(reopened.statistics.snapshot().receivedPackets, 2, "counts continue across the swap")
    }

    func testKernelRingDropsAreCollected() throws {
        let veth = try XCTUnwrap(veth)
        var tiny = PacketSocket.Configuration()
        tiny.receiveBlockSize = 4096
        tiny.receiveBlockCount = 2
        let host = try PacketSocketPort.open(interface: veth.hostName, configuration: tiny)
        let peer = try veth.openPeerPort()
        XCTAssertTrue(host.waitForLink(up: true))
        host.collectKernelStatistics()
        let before = host.statistics.snapshot().receiveRingDrops
        for burst in 0..<4 {
            _ = peer.send((0..<16).map { Frames.make(length: 1000, marker: 5, sequence: burst * 16 + $0) })
        }
        usleep(20_000)
        host.collectKernelStatistics()
        XCTAssertGreaterThan(host.statistics.snapshot().receiveRingDrops, before)
    }
}
