import Foundation
import Glibc
import Synchronization
import XCTest
@testable import VhostSystem

/// A veth pair with one end in a fresh network namespace: the host end is where the
/// switch's port would sit, the peer end plays the outside world. Needs root and `ip`.
final class VethPair {
    let namespace: String
    let hostName: String
    let peerName: String
    let ip: String

    private static let counter = Mutex(0)

    static func ipTool() -> String? {
        ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"].first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// Throws XCTSkip (with the reason printed) when the environment cannot do this.
    static func skipUnlessPossible() throws {
        if getuid() != 0 {
            print("skipping: AF_PACKET/veth tests need root")
            throw XCTSkip("AF_PACKET/veth tests need root")
        }
        if ipTool() == nil {
            print("skipping: the ip tool (iproute2) is missing")
            throw XCTSkip("the ip tool (iproute2) is missing")
        }
    }

    init() throws {
        let serial = Self.counter.withLock { $0 += 1; return $0 }
        // Interface names are at most 15 bytes; pid + counter keeps parallel runs apart.
        let tag = "\(getpid() % 100_000)x\(serial)"
        namespace = "vsw-test-\(tag)"
        hostName = "vsh\(tag)"
        peerName = "vsp\(tag)"
        ip = Self.ipTool()!
        try run(["netns", "add", namespace])
        do {
            try run(["link", "add", hostName, "type", "veth", "peer", "name", peerName])
            try run(["link", "set", peerName, "netns", namespace])
            try run(["link", "set", hostName, "up"])
            try runInNamespace(["link", "set", peerName, "up"])
        } catch {
            destroy()
            throw error
        }
    }

    /// Removes both ends and the namespace; safe to call twice.
    func destroy() {
        _ = try? run(["link", "del", hostName], quiet: true)
        _ = try? run(["netns", "del", namespace], quiet: true)
    }

    /// Deletes and re-creates the pair under the same names (new interface indices).
    func recreate() throws {
        _ = try? run(["link", "del", hostName], quiet: true)
        try run(["link", "add", hostName, "type", "veth", "peer", "name", peerName])
        try run(["link", "set", peerName, "netns", namespace])
        try run(["link", "set", hostName, "up"])
        try runInNamespace(["link", "set", peerName, "up"])
    }

    func runInNamespace(_ arguments: [String]) throws {
        try run(["netns", "exec", namespace, ip] + arguments)
    }

    @discardableResult
    func run(_ arguments: [String], quiet: Bool = false) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: ip)
        process.arguments = arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self)
        if process.terminationStatus != 0 {
            if !quiet { print("ip \(arguments.joined(separator: " ")) failed: \(text)") }
            throw SystemError("ip \(arguments.joined(separator: " "))", errno: EIO)
        }
        return text
    }

    /// Opens a packet socket on the peer end, inside the namespace.
    func openPeerSocket() throws -> PacketSocket {
        try NetworkNamespace.run(path: "/var/run/netns/\(namespace)") { () throws(SystemError) -> PacketSocket in
            try PacketSocket(interface: peerName)
        }
    }

    /// The promiscuity count `ip -d link show` reports for the host end.
    func hostPromiscuity() throws -> Int? {
        let text = try run(["-d", "link", "show", hostName])
        guard let range = text.range(of: "promiscuity ") else { return nil }
        return Int(text[range.upperBound...].prefix { $0.isNumber })
    }
}

enum TestFrames {
    /// A local-experimental EtherType (IEEE 802 88B5), so nothing else on the link matches.
    static let etherType: [UInt8] = [0x88, 0xB5]
    static let peerMAC: [UInt8] = [0x02, 0x00, 0x00, 0xC8, 0x00, 0x02]
    static let hostMAC: [UInt8] = [0x02, 0x00, 0x00, 0xC8, 0x00, 0x01]
    static let foreignMAC: [UInt8] = [0x02, 0x00, 0x00, 0xC8, 0x00, 0x99]

    /// A frame of `length` bytes carrying `marker` and `sequence`, with varied payload bytes.
    static func make(length: Int, marker: UInt32, sequence: Int, destination: [UInt8] = foreignMAC,
                     source: [UInt8] = peerMAC) -> [UInt8] {
        var frame = destination + source + etherType
        withUnsafeBytes(of: marker.bigEndian) { frame += $0 }
        withUnsafeBytes(of: UInt32(sequence).bigEndian) { frame += $0 }
        var byte = UInt8(truncatingIfNeeded: sequence &* 31 &+ 7)
        while frame.count < length {
            frame.append(byte)
            byte = byte &* 13 &+ 1
        }
        return frame
    }

    /// A frame with an 802.1Q tag (TPID 0x8100, VID 100, PCP 3) before our EtherType.
    static func makeTagged(length: Int, marker: UInt32, sequence: Int) -> [UInt8] {
        var frame = make(length: length - 4, marker: marker, sequence: sequence)
        frame.insert(contentsOf: [0x81, 0x00, 0x60, 0x64], at: 12)
        return frame
    }

    /// True when `frame` is one of ours with `marker`, tagged or not.
    static func matches(_ frame: [UInt8], marker: UInt32) -> Bool {
        var offset = 12
        if frame.count >= 16 && frame[12] == 0x81 && frame[13] == 0x00 { offset = 16 }
        guard frame.count >= offset + 6, Array(frame[offset..<offset + 2]) == etherType else { return false }
        let found = frame[(offset + 2)..<(offset + 6)].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
        return found == marker
    }

    static func newMarker() -> UInt32 { UInt32.random(in: 1...UInt32.max) }
}

extension PacketSocket {
    /// Queues and flushes `frames`; fails the test when any is refused.
    func send(_ frames: [[UInt8]], file: StaticString = #filePath, line: UInt = #line) {
        for frame in frames {
            let result = frame.withUnsafeBytes { enqueue($0.baseAddress!, length: $0.count) }
            XCTAssertEqual(result, .queued, file: file, line: line)
        }
        let flushed = flush()
        XCTAssertEqual(flushed.error, 0, "sendto: \(SystemError("sendto", errno: flushed.error))", file: file, line: line)
        XCTAssertEqual(flushed.dropped, 0, file: file, line: line)
    }

    /// Collects our frames with `marker` until `count` arrived or `timeout` passed.
    func collect(marker: UInt32, count: Int, timeout: Double = 2.0) -> [[UInt8]] {
        var frames: [[UInt8]] = []
        let deadline = Date().addingTimeInterval(timeout)
        while frames.count < count && Date() < deadline {
            _ = receive(maxCount: 32) { frame in
                var bytes = [UInt8](repeating: 0, count: frame.length)
                bytes.withUnsafeMutableBytes { frame.copy(to: $0.baseAddress!) }
                if TestFrames.matches(bytes, marker: marker) { frames.append(bytes) }
                return true
            }
            if frames.count < count { usleep(1000) }
        }
        return frames
    }

    func waitForLink(up: Bool, timeout: Double = 3.0) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if linkIsUp() == up { return true }
            usleep(10_000)
        }
        return linkIsUp() == up
    }
}

final class PacketSocketTests: XCTestCase {
    private var veth: VethPair?

    override func setUpWithError() throws {
        try VethPair.skipUnlessPossible()
        veth = try VethPair()
    }

    override func tearDown() {
        veth?.destroy()
        veth = nil
    }

    private func openPair() throws -> (host: PacketSocket, peer: PacketSocket) {
        let veth = try XCTUnwrap(veth)
        let host = try PacketSocket(interface: veth.hostName)
        let peer = try veth.openPeerSocket()
        XCTAssertTrue(host.waitForLink(up: true), "veth carrier never came up")
        return (host, peer)
    }

    func testOpensWithRingsAndOptions() throws {
        let veth = try XCTUnwrap(veth)
        let host = try PacketSocket(interface: veth.hostName)
        XCTAssertEqual(host.interfaceIndex, NetworkInterface.index(named: veth.hostName))
        XCTAssertEqual(host.mtu, 1500)
        XCTAssertEqual(host.macAddress.count, 6)
        XCTAssertEqual(host.maxTransmitLength, 1518)
        XCTAssertTrue(host.kernelIgnoresOutgoing, "PACKET_IGNORE_OUTGOING needs kernel 4.20+")
        XCTAssertTrue(host.bypassesQdisc)
        XCTAssertGreaterThanOrEqual(host.pollDescriptor, 0)
        XCTAssertFalse(host.hasPendingFrames)
    }

    func testMissingInterfaceIsAnError() throws {
        XCTAssertThrowsError(try PacketSocket(interface: "vsw-no-such0")) { error in
            XCTAssertEqual((error as? SystemError)?.errno, ENODEV)
        }
        XCTAssertThrowsError(try PacketSocket(interface: String(repeating: "x", count: 40))) { error in
            XCTAssertEqual((error as? SystemError)?.errno, EINVAL)
        }
    }

    func testFramesFromThePeerArriveByteExact() throws {
        let (host, peer) = try openPair()
        let marker = TestFrames.newMarker()
        let lengths = [60, 64, 128, 333, 1000, 1514, 60, 1514]
        let sent = lengths.enumerated().map { TestFrames.make(length: $1, marker: marker, sequence: $0) }
        peer.send(sent)
        let received = host.collect(marker: marker, count: sent.count)
        XCTAssertEqual(received.count, sent.count)
        XCTAssertEqual(received, sent, "frames must arrive unchanged and in order")
    }

    func testStrippedVLANTagIsPutBack() throws {
        let (host, peer) = try openPair()
        let marker = TestFrames.newMarker()
        let sent = [TestFrames.makeTagged(length: 100, marker: marker, sequence: 1),
                    TestFrames.makeTagged(length: 1518, marker: marker, sequence: 2)]
        peer.send(sent)
        XCTAssertEqual(host.collect(marker: marker, count: 2), sent)
    }

    func testTransmittedFramesArriveAtThePeerAndNotBackHere() throws {
        let (host, peer) = try openPair()
        let marker = TestFrames.newMarker()
        let sent = (0..<40).map {
            TestFrames.make(length: 60 + $0 * 37, marker: marker, sequence: $0, destination: TestFrames.peerMAC, source: TestFrames.hostMAC)
        }
        host.send(Array(sent[0..<20]))
        host.send(Array(sent[20...]))
        XCTAssertEqual(peer.collect(marker: marker, count: sent.count), sent)
        // Well past the 1 ms block retire timeout: anything looped back would be here by now.
        XCTAssertEqual(host.collect(marker: marker, count: 1, timeout: 0.1), [])
    }

    func testPromiscuousModeLastsAsLongAsTheSocket() throws {
        let veth = try XCTUnwrap(veth)
        XCTAssertEqual(try veth.hostPromiscuity(), 0)
        var host: PacketSocket? = try PacketSocket(interface: veth.hostName)
        XCTAssertEqual(try veth.hostPromiscuity(), 1)
        let peer = try veth.openPeerSocket()
        XCTAssertTrue(host!.waitForLink(up: true))
        let marker = TestFrames.newMarker()
        let frame = TestFrames.make(length: 80, marker: marker, sequence: 0, destination: TestFrames.foreignMAC)
        peer.send([frame])
        XCTAssertEqual(host!.collect(marker: marker, count: 1), [frame], "unicast to a foreign MAC must be received")
        host = nil
        XCTAssertEqual(try veth.hostPromiscuity(), 0, "closing the socket must drop promiscuous mode")

        var quiet = PacketSocket.Configuration()
        quiet.promiscuous = false
        _ = try PacketSocket(interface: veth.hostName, configuration: quiet)
        XCTAssertEqual(try veth.hostPromiscuity(), 0)
    }

    func testOversizedAndRuntFramesAreRefusedOnTransmit() throws {
        let (host, _) = try openPair()
        let big = [UInt8](repeating: 0xAA, count: host.maxTransmitLength + 1)
        let runt = [UInt8](repeating: 0xAA, count: 13)
        XCTAssertEqual(big.withUnsafeBytes { host.enqueue($0.baseAddress!, length: $0.count) }, .badLength)
        XCTAssertEqual(runt.withUnsafeBytes { host.enqueue($0.baseAddress!, length: $0.count) }, .badLength)
        XCTAssertEqual(host.flush(), PacketSocket.FlushResult())
    }

    func testLinkDownAndUpIsSeenAndTheSocketKeepsWorking() throws {
        let veth = try XCTUnwrap(veth)
        let (host, peer) = try openPair()
        XCTAssertEqual(host.linkState(), .up)

        XCTAssertEqual(host.takePendingError(), 0)
        try veth.run(["link", "set", veth.hostName, "down"])
        XCTAssertEqual(host.linkState(), .down)
        XCTAssertFalse(host.linkIsUp())
        XCTAssertEqual(host.takePendingError(), ENETDOWN)
        XCTAssertEqual(host.takePendingError(), 0)

        // Frames queued while down are taken back, not sent later.
        let stale = TestFrames.newMarker()
        let frame = TestFrames.make(length: 100, marker: stale, sequence: 0)
        XCTAssertEqual(frame.withUnsafeBytes { host.enqueue($0.baseAddress!, length: $0.count) }, .queued)
        let result = host.flush()
        XCTAssertEqual(result.error, ENETDOWN)
        XCTAssertEqual(result.dropped, 1)

        try NetworkInterface.setUp(veth.hostName, true)
        XCTAssertTrue(host.waitForLink(up: true))
        XCTAssertEqual(host.linkState(), .up)

        // Carrier loss (peer down) also counts as down: IFF_RUNNING clears.
        try veth.runInNamespace(["link", "set", veth.peerName, "down"])
        XCTAssertTrue(host.waitForLink(up: false))
        XCTAssertEqual(host.linkState(), .down)
        try veth.runInNamespace(["link", "set", veth.peerName, "up"])
        XCTAssertTrue(host.waitForLink(up: true))

        // The same socket receives and sends again after the interface came back.
        let marker = TestFrames.newMarker()
        let toHost = TestFrames.make(length: 200, marker: marker, sequence: 1)
        peer.send([toHost])
        XCTAssertEqual(host.collect(marker: marker, count: 1), [toHost])
        let toPeer = TestFrames.make(length: 300, marker: marker, sequence: 2, destination: TestFrames.peerMAC)
        host.send([toPeer])
        XCTAssertEqual(peer.collect(marker: marker, count: 1), [toPeer])
        XCTAssertEqual(peer.collect(marker: stale, count: 1, timeout: 0.05), [], "a frame dropped while down went out late")
    }

    func testDeletedAndRecreatedInterfaceIsReportedAndReopens() throws {
        let veth = try XCTUnwrap(veth)
        let (host, _) = try openPair()
        let oldIndex = host.interfaceIndex

        try veth.run(["link", "del", veth.hostName])
        XCTAssertEqual(host.linkState(), .missing)
        XCTAssertFalse(host.linkIsUp())

        try veth.recreate()
        guard case .replaced(let newIndex) = host.linkState() else {
            return XCTFail("expected .replaced, got \(host.linkState())")
        }
        XCTAssertNotEqual(newIndex, oldIndex)

        // The old socket is unbound for good; a new one on the same name works.
        let reopened = try PacketSocket(interface: veth.hostName)
        XCTAssertEqual(reopened.interfaceIndex, newIndex)
        let peer = try veth.openPeerSocket()
        XCTAssertTrue(reopened.waitForLink(up: true))
        let marker = TestFrames.newMarker()
        let frame = TestFrames.make(length: 150, marker: marker, sequence: 0)
        peer.send([frame])
        XCTAssertEqual(reopened.collect(marker: marker, count: 1), [frame])
        XCTAssertEqual(host.collect(marker: marker, count: 1, timeout: 0.05), [])
    }

    func testFullReceiveRingDropsAreCountedByTheKernel() throws {
        let veth = try XCTUnwrap(veth)
        var small = PacketSocket.Configuration()
        small.receiveBlockSize = 4096
        small.receiveBlockCount = 2
        let host = try PacketSocket(interface: veth.hostName, configuration: small)
        let peer = try veth.openPeerSocket()
        XCTAssertTrue(host.waitForLink(up: true))
        _ = try host.kernelStatistics()
        let marker = TestFrames.newMarker()
        // 2 blocks of 4 KiB hold a handful of 1 KiB frames; the rest must be dropped.
        for burst in 0..<4 {
            peer.send((0..<16).map { TestFrames.make(length: 1000, marker: marker, sequence: burst * 16 + $0) })
        }
        usleep(20_000)
        let stats = try host.kernelStatistics()
        XCTAssertGreaterThan(stats.drops, 0)
        XCTAssertTrue(host.hasPendingFrames)
        // Reading drains the ring, after which it works again.
        let first = host.collect(marker: marker, count: 64, timeout: 0.1)
        XCTAssertFalse(first.isEmpty)
        XCTAssertLessThan(first.count, 64)
        XCTAssertFalse(host.hasPendingFrames)
        let again = TestFrames.newMarker()
        let frame = TestFrames.make(length: 500, marker: again, sequence: 0)
        peer.send([frame])
        XCTAssertEqual(host.collect(marker: again, count: 1), [frame])
    }

    func testSocketsAndMappingsAreReleased() throws {
        let veth = try XCTUnwrap(veth)
        let before = FileDescriptor.openCount()
        for _ in 0..<20 {
            let socket = try PacketSocket(interface: veth.hostName)
            _ = socket.receive(maxCount: 32) { _ in true }
        }
        XCTAssertEqual(FileDescriptor.openCount(), before)
    }
}
