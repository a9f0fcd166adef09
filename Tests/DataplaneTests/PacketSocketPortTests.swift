import Foundation
import Glibc
import Synchronization
import XCTest
@testable import Dataplane
import VhostSystem
import Virtio

/// A veth pair with the peer end in a fresh network namespace (10.200/16 style isolation:
/// nothing here is ever sent outside that pair). Needs root and `ip`.
/// Shared with `AfXdpPortTests`.
final class PortVeth {
    let namespace: String
    let hostName: String
    let peerName: String
    let ip: String
    /// Receive and transmit queues of each end.
    let queues: Int
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

    init(ip: String, queues: Int = 1) throws {
        self.ip = ip
        self.queues = queues
        let serial = Self.counter.withLock { $0 += 1; return $0 }
        let tag = "\(getpid() % 100_000)p\(serial)"
        namespace = "vsw-ptest-\(tag)"
        hostName = "vph\(tag)"
        peerName = "vpp\(tag)"
        try run(["netns", "add", namespace])
        do { try create() } catch { destroy(); throw error }
    }

    func create() throws {
        let queueArguments = ["numtxqueues", "\(queues)", "numrxqueues", "\(queues)"]
        try run(["link", "add", hostName] + queueArguments + ["type", "veth", "peer", "name", peerName] + queueArguments)
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
            try PacketSocketPort.open(interface: peerName, configuration: .withVnetHeaders)
        }
    }
}

extension PacketSocket.Configuration {
    /// The kernel-offload tests run with PACKET_VNET_HDR (off by default in the daemon).
    static var withVnetHeaders: PacketSocket.Configuration {
        var configuration = PacketSocket.Configuration()
        configuration.vnetHeaders = true
        return configuration
    }
}

/// A burst's worth of packet buffers in one allocation.
final class TestBuffers {
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

enum Frames {
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

/// What the kernel-port tests drive: an af-packet or an af-xdp port.
protocol KernelTestPort {
    func receiveBurst(into buffers: UnsafeMutablePointer<PacketBuffer>, maxCount: Int) -> Int
    func transmitBurst(_ buffers: UnsafePointer<PacketBuffer>, count: Int) -> Int
    func linkIsUp() -> Bool
    func hasPendingFrames() -> Bool
    var pollDescriptor: Int32 { get }
    var statistics: PacketSocketPortStatistics { get }
}

extension PacketSocketPort: KernelTestPort {}
extension AfXdpPort: KernelTestPort {}

extension KernelTestPort {
    /// Receives bursts until `count` frames with `marker` arrived or `timeout` passed.
    func collect(_ marker: UInt32, count: Int, timeout: Double = 2.0, capacity: Int = 2048) -> [[UInt8]] {
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

    func send(_ frames: [[UInt8]]) -> Int {
        let buffers = TestBuffers()
        buffers.load(frames)
        return transmitBurst(buffers.buffers, count: frames.count)
    }

    /// Five copies of a 100-byte frame to `peer`: the second and third with the offload
    /// headers `offloads` sets (the port must drop them), the fourth cut to 10 bytes, the
    /// fifth 1600 long. Only the first may reach the wire, and the counters say why.
    func checkTransmitDrops(to peer: PacketSocketPort, offloads: (inout VirtioNetHeader, inout VirtioNetHeader) -> Void,
                            file: StaticString = #filePath, line: UInt = #line) {
        let marker = UInt32.random(in: 1...UInt32.max)
        let good = Frames.make(length: 100, marker: marker, sequence: 0, destination: Frames.peerMAC)
        let buffers = TestBuffers()
        buffers.load([good, good, good, good, good])
        offloads(&buffers.buffers[1].header, &buffers.buffers[2].header)
        buffers.buffers[3].length = 10
        buffers.buffers[4].length = 1600
        XCTAssertEqual(transmitBurst(buffers.buffers, count: 5), 1, file: file, line: line)
        XCTAssertEqual(peer.collect(marker, count: 5, timeout: 0.5), [good], "a dropped frame reached the wire", file: file, line: line)
        let stats = statistics.snapshot()
        XCTAssertEqual(stats.transmitDropsUnsupportedOffload, 2, file: file, line: line)
        XCTAssertEqual(stats.transmitDropsTooShort, 1, file: file, line: line)
        XCTAssertEqual(stats.transmitDropsTooLarge, 1, file: file, line: line)
        XCTAssertEqual(stats.transmittedPackets, 1, file: file, line: line)
        XCTAssertEqual(stats.transmittedBytes, 100, file: file, line: line)
    }

    /// A frame from `peer` wakes an edge-triggered epoll on the port's fd (what a sleeping
    /// poll thread waits on), and `hasPendingFrames` says so until the frame is taken.
    func checkPendingFrameWakesEpoll(from peer: PacketSocketPort, file: StaticString = #filePath, line: UInt = #line) throws {
        _ = collect(0, count: Int.max, timeout: 0.05)  // drain link noise
        XCTAssertFalse(hasPendingFrames(), file: file, line: line)
        let epoll = try Epoll()
        try epoll.add(pollDescriptor, events: Epoll.input | Epoll.edgeTriggered, token: 7)
        var events: [Epoll.Event] = []
        let marker = UInt32.random(in: 1...UInt32.max)
        XCTAssertEqual(peer.send([Frames.make(length: 90, marker: marker, sequence: 0)]), 1, file: file, line: line)
        try epoll.wait(into: &events, timeoutMilliseconds: 1000)
        XCTAssertEqual(events.map(\.token), [7], "the port's fd must wake epoll", file: file, line: line)
        XCTAssertTrue(hasPendingFrames(), file: file, line: line)
        XCTAssertEqual(collect(marker, count: 1).count, 1, file: file, line: line)
        XCTAssertFalse(hasPendingFrames(), file: file, line: line)
    }

    func waitForLink(up: Bool, timeout: Double = 3.0) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while linkIsUp() != up && Date() < deadline { usleep(10_000) }
        return linkIsUp() == up
    }
}

/// A fresh veth pair per test (skipped without root), for the kernel-port tests.
class PortVethTestCase: XCTestCase {
    var veth: PortVeth?

    override func setUpWithError() throws {
        veth = try PortVeth(ip: PortVeth.skipUnlessPossible())
    }

    override func tearDown() {
        veth?.destroy()
        veth = nil
    }
}

final class PacketSocketPortTests: PortVethTestCase {

    private func openPorts() throws -> (host: PacketSocketPort, peer: PacketSocketPort) {
        let veth = try XCTUnwrap(veth)
        let host = try PacketSocketPort.open(interface: veth.hostName, configuration: .withVnetHeaders)
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
        // Malformed offload headers: the checksum field past the frame; GSO without NEEDS_CSUM.
        host.checkTransmitDrops(to: peer) { checksum, gso in
            checksum.flags = VirtioNetHeader.flagNeedsChecksum
            checksum.checksumStart = 90
            checksum.checksumOffset = 9
            gso.gsoType = VirtioNetHeader.gsoTCPv4
            gso.gsoSize = 40
        }
    }

    func testPendingFramesAndPollDescriptorWakeTheSleeper() throws {
        let (host, peer) = try openPorts()
        // The block retire timer hands the frame over.
        try host.checkPendingFrameWakesEpoll(from: peer)
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

// MARK: - Offloads through PACKET_VNET_HDR

/// IPv4 frames with a TCP or UDP payload and their checksums, computed here independently
/// of the kernel.
private enum IPv4Frames {
    static let source: [UInt8] = [10, 201, 0, 1]
    static let destination: [UInt8] = [10, 201, 0, 2]

    static func sum(_ bytes: ArraySlice<UInt8>, _ initial: UInt32 = 0) -> UInt32 {
        var total = initial
        var i = bytes.startIndex
        while i + 1 < bytes.endIndex { total &+= UInt32(bytes[i]) << 8 | UInt32(bytes[i + 1]); i += 2 }
        if i < bytes.endIndex { total &+= UInt32(bytes[i]) << 8 }
        return total
    }

    static func fold(_ value: UInt32) -> UInt16 {
        var v = value
        while v >> 16 != 0 { v = (v & 0xFFFF) &+ (v >> 16) }
        return UInt16(v)
    }

    static func pseudoHeaderSum(protocol: UInt8, length: Int) -> UInt32 {
        sum(ArraySlice(source + destination)) &+ UInt32(`protocol`) &+ UInt32(length)
    }

    /// Ethernet + IPv4 (checksum filled) + L4 header + payload; the L4 checksum field holds
    /// the folded pseudo-header sum, as a stack leaving the checksum to offload writes it.
    static func make(protocol proto: UInt8, ports: UInt16, payload: [UInt8]) -> [UInt8] {
        let l4Header = proto == 6 ? 20 : 8
        let l4Length = l4Header + payload.count
        var ip: [UInt8] = [0x45, 0, UInt8((20 + l4Length) >> 8), UInt8((20 + l4Length) & 0xFF), 0, 1, 0x40, 0, 64, proto, 0, 0]
        ip += source + destination
        let ipCheck = ~fold(sum(ArraySlice(ip)))
        ip[10] = UInt8(ipCheck >> 8); ip[11] = UInt8(ipCheck & 0xFF)
        var l4: [UInt8]
        if proto == 6 {
            l4 = [UInt8(ports >> 8), UInt8(ports & 0xFF), 0x1F, 0x90, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x18, 0xFF, 0xFF, 0, 0, 0, 0]
        } else {
            l4 = [UInt8(ports >> 8), UInt8(ports & 0xFF), 0x1F, 0x90, UInt8(l4Length >> 8), UInt8(l4Length & 0xFF), 0, 0]
        }
        let pseudo = fold(pseudoHeaderSum(protocol: proto, length: l4Length))
        let at = proto == 6 ? 16 : 6
        l4[at] = UInt8(pseudo >> 8); l4[at + 1] = UInt8(pseudo & 0xFF)
        return Frames.peerMAC + Frames.hostMAC + [0x08, 0x00] + ip + l4 + payload
    }

    /// Whether the IPv4 and L4 checksums of a received frame are both valid.
    static func checksumsValid(_ frame: [UInt8]) -> Bool {
        guard frame.count >= 34, frame[12] == 0x08, frame[13] == 0x00 else { return false }
        let totalLength = Int(frame[16]) << 8 | Int(frame[17])
        guard 14 + totalLength <= frame.count, fold(sum(frame[14..<34])) == 0xFFFF else { return false }
        let l4 = frame[34..<(14 + totalLength)]
        return fold(sum(l4, pseudoHeaderSum(protocol: frame[23], length: l4.count))) == 0xFFFF
    }

    static func sourcePort(_ frame: [UInt8]) -> UInt16? {
        guard frame.count >= 38, frame[12] == 0x08, frame[13] == 0x00 else { return nil }
        return UInt16(frame[34]) << 8 | UInt16(frame[35])
    }
}

extension PacketSocketPort {
    /// Receives IPv4 frames from `port` (source port) with their headers until `count` or `timeout`.
    fileprivate func collectIPv4(port: UInt16, count: Int, timeout: Double = 2.0) -> [([UInt8], VirtioNetHeader)] {
        let buffers = TestBuffers(count: 32, capacity: 66 * 1024)
        var frames: [([UInt8], VirtioNetHeader)] = []
        let deadline = Date().addingTimeInterval(timeout)
        while frames.count < count && Date() < deadline {
            let n = receiveBurst(into: buffers.buffers, maxCount: buffers.count)
            for i in 0..<n {
                let frame = buffers.bytes(i)
                if IPv4Frames.sourcePort(frame) == port { frames.append((frame, buffers.buffers[i].header)) }
            }
            if n == 0 { usleep(1000) }
        }
        return frames
    }
}

extension PacketSocketPortTests {
    /// Turns checksum and segmentation offloads off on our veth end, so the kernel must
    /// finish checksums and segment in software before the frames cross the veth.
    private func softwareOffloadsOnHostEnd() throws {
        let veth = try XCTUnwrap(veth)
        guard let ethtool = ["/usr/sbin/ethtool", "/sbin/ethtool"].first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            print("skipping: ethtool is missing")
            throw XCTSkip("ethtool is missing")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: ethtool)
        process.arguments = ["-K", veth.hostName, "tx", "off", "tso", "off", "gso", "off"]
        try process.run()
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0, "ethtool -K failed")
    }

    func testPortAcceptsKernelOffloads() throws {
        let (host, _) = try openPorts()
        XCTAssertTrue(host.socket.carriesVnetHeaders)
        XCTAssertEqual(host.acceptedOffloadFeatures, PacketSocketPort.offloadsWithVnetHeaders)
    }

    func testPartialChecksumIsCompletedOnTheWire() throws {
        try softwareOffloadsOnHostEnd()
        let (host, peer) = try openPorts()
        let port = UInt16.random(in: 1024...60000)
        let frame = IPv4Frames.make(protocol: 17, ports: port, payload: (0..<300).map { UInt8(truncatingIfNeeded: $0 * 7) })
        XCTAssertFalse(IPv4Frames.checksumsValid(frame), "the test frame should start with a partial checksum")
        let buffers = TestBuffers()
        buffers.load([frame])
        buffers.buffers[0].header = VirtioNetHeader(flags: VirtioNetHeader.flagNeedsChecksum, checksumStart: 34, checksumOffset: 6)
        XCTAssertEqual(host.transmitBurst(buffers.buffers, count: 1), 1)
        let received = peer.collectIPv4(port: port, count: 1)
        XCTAssertEqual(received.count, 1)
        guard let (wire, _) = received.first else { return }
        XCTAssertEqual(wire.count, frame.count)
        XCTAssertTrue(IPv4Frames.checksumsValid(wire), "checksum not completed")
        XCTAssertEqual(Array(wire[42...]), Array(frame[42...]))
    }

    func testTCPSuperFrameIsSegmentedByTheKernel() throws {
        try softwareOffloadsOnHostEnd()
        let (host, peer) = try openPorts()
        let port = UInt16.random(in: 1024...60000)
        let payload = (0..<20_000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 8) }
        let frame = IPv4Frames.make(protocol: 6, ports: port, payload: payload)
        let buffers = TestBuffers(count: 1, capacity: 66 * 1024)
        buffers.load([frame])
        buffers.buffers[0].header = VirtioNetHeader(flags: VirtioNetHeader.flagNeedsChecksum, gsoType: VirtioNetHeader.gsoTCPv4,
                                                    headerLength: 54, gsoSize: 1448, checksumStart: 34, checksumOffset: 16)
        XCTAssertEqual(host.transmitBurst(buffers.buffers, count: 1), 1)
        let segments = peer.collectIPv4(port: port, count: 14)
        XCTAssertEqual(segments.count, 14, "20000 bytes at 1448 per segment")
        var joined: [UInt8] = []
        for (segment, _) in segments {
            XCTAssertTrue(IPv4Frames.checksumsValid(segment), "segment with a bad checksum")
            XCTAssertLessThanOrEqual(segment.count, 14 + 20 + 20 + 1448)
            joined += segment[54...]
        }
        XCTAssertTrue(joined == payload, "the segments' payloads do not add up to the original (\(joined.count) bytes)")
        let stats = host.statistics.snapshot()
        if stats.transmittedPackets != 1 { print("transmit statistics: \(stats)") }
        XCTAssertEqual(stats.transmittedPackets, 1)
        XCTAssertEqual(stats.transmittedBytes, UInt64(frame.count))
    }

    func testReceivedSuperFrameKeepsItsGSOHeader() throws {
        let (host, peer) = try openPorts()
        let port = UInt16.random(in: 1024...60000)
        let payload = (0..<20_000).map { UInt8(truncatingIfNeeded: $0 &* 13) }
        var frame = IPv4Frames.make(protocol: 6, ports: port, payload: payload)
        // From the peer to us: swap the MACs so our end takes it as addressed to it.
        frame.replaceSubrange(0..<12, with: Frames.hostMAC + Frames.peerMAC)
        let header = VirtioNetHeader(flags: VirtioNetHeader.flagNeedsChecksum, gsoType: VirtioNetHeader.gsoTCPv4,
                                     headerLength: 54, gsoSize: 1448, checksumStart: 34, checksumOffset: 16)
        let buffers = TestBuffers(count: 1, capacity: 66 * 1024)
        buffers.load([frame])
        buffers.buffers[0].header = header
        XCTAssertEqual(peer.transmitBurst(buffers.buffers, count: 1), 1)
        let received = host.collectIPv4(port: port, count: 1)
        XCTAssertEqual(received.count, 1)
        guard let (bytes, kept) = received.first else { return }
        XCTAssertEqual(bytes, frame, "the super-frame arrives whole")
        XCTAssertEqual(kept.flags & VirtioNetHeader.flagNeedsChecksum, VirtioNetHeader.flagNeedsChecksum)
        XCTAssertEqual(kept.gsoType, VirtioNetHeader.gsoTCPv4)
        XCTAssertEqual(kept.gsoSize, 1448)
        XCTAssertEqual(kept.checksumStart, 34)
        XCTAssertEqual(kept.checksumOffset, 16)
    }
}

/// An af-packet port as a trunk uplink (issue 18). The kernel takes the tag off frames it
/// hands to AF_PACKET (tp_vlan_tci); the port puts it back and the switch pops it into the
/// frame's segment. Frames the switch tags for the trunk leave through the transmit ring and
/// reach the peer tagged.
final class PacketSocketTrunkTests: SimulatedGuestSwitchTestCase {
    private var veth: PortVeth?

    override func setUpWithError() throws {
        veth = try PortVeth(ip: PortVeth.skipUnlessPossible())
        try super.setUpWithError()
    }

    override func tearDown() {
        super.tearDown()
        veth?.destroy()
        veth = nil
    }

    func testTrunkUplinkCarriesTaggedFramesBothWaysAndDropsOtherVLANs() throws {
        let veth = try XCTUnwrap(veth)
        let host = try PacketSocketPort.open(interface: veth.hostName, configuration: .withVnetHeaders)
        try checkTrunkUplink(.packetSockets(PacketSocketGroup(sockets: [host])))
    }

    /// The same through an af-xdp port (native XDP on the veth): tags stay in the frame
    /// data, so the switch classifies them without help from the socket.
    func testAfXdpTrunkUplinkCarriesTaggedFramesBothWaysAndDropsOtherVLANs() throws {
        let veth = try XCTUnwrap(veth)
        let host = try AfXdpPort.open(interface: veth.hostName, configuration: XDPSocket.Configuration(queue: 0, mode: .native))
        try checkTrunkUplink(.afXdp(host))
    }

    private func checkTrunkUplink(_ host: KernelPort) throws {
        let veth = try XCTUnwrap(veth)
        let peer = try veth.openPeerPort()
        XCTAssertTrue(peer.waitForLink(up: true), "veth carrier never came up")
        let uplink = try XCTUnwrap(fabric.addPort(name: "uplink"))
        fabric.setPolicy(portID: uplink, .trunk([10, 20], native: nil))
        fabric.setKernelPort(portID: uplink, port: host)
        let guest = try SimulatedGuestPort(mac: SegmentFrames.mac(0xA))
        guest.keepFrames = true
        let guestID = try XCTUnwrap(fabric.addPort(name: "guest"))
        fabric.setPolicy(portID: guestID, .access(10))
        fabric.setQueues(portID: guestID, queues: guest.activeQueues)
        let broadcast: [UInt8] = [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]

        guest.transmit(frames: [SegmentFrames.untagged(to: broadcast, from: 0xA, payload: 7, length: 100)])
        XCTAssertEqual(peer.collect(from: SegmentFrames.mac(0xA), count: 1),
                       [SegmentFrames.tagged(to: broadcast, from: 0xA, vlan: 10, payload: 7, length: 100)], "tagged on the wire")

        XCTAssertEqual(peer.send([SegmentFrames.tagged(to: SegmentFrames.mac(0xA), from: 0x7, vlan: 10, payload: 8, length: 100)]), 1)
        XCTAssertEqual(guest.waitForFrames(1), 1)
        XCTAssertEqual(guest.receivedFrames.last, SegmentFrames.untagged(to: SegmentFrames.mac(0xA), from: 0x7, payload: 8, length: 100))

        XCTAssertEqual(peer.send([SegmentFrames.tagged(to: broadcast, from: 0x7, vlan: 30, payload: 9)]), 1)
        XCTAssertEqual(guest.waitForFrames(1, timeout: 0.3), 0)
        XCTAssertEqual(fabric.segmentStatistics().first { $0.segment == 30 }?.drops[.notCarried], 1)
    }
}

extension PacketSocketPort {
    /// Frames from `source` received within `timeout`, as they were on the wire.
    fileprivate func collect(from source: [UInt8], count: Int, timeout: Double = 2.0) -> [[UInt8]] {
        let buffers = TestBuffers()
        var frames: [[UInt8]] = []
        let deadline = Date().addingTimeInterval(timeout)
        while frames.count < count && Date() < deadline {
            let n = receiveBurst(into: buffers.buffers, maxCount: buffers.count)
            for i in 0..<n where Array(buffers.bytes(i)[6..<12]) == source { frames.append(buffers.bytes(i)) }
            if n == 0 { usleep(1000) }
        }
        return frames
    }
}
