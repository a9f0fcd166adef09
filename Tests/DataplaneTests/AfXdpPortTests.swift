import Foundation
import Glibc
import XCTest
@testable import Dataplane
import VhostSystem
import TestSupport
import Virtio

/// An af-xdp port on the host end of a veth (native XDP: veth has it), an af-packet socket
/// on the peer end in a namespace. Needs root.
final class AfXdpPortTests: PortVethTestCase {
    private func openPorts(mode: XDPSocket.AttachMode = .native) throws -> (host: AfXdpPort, peer: PacketSocketPort) {
        let veth = try XCTUnwrap(veth)
        let host = try AfXdpPort.open(interface: veth.hostName, configuration: XDPSocket.Configuration(queue: 0, mode: mode))
        let peer = try veth.openPeerPort()
        XCTAssertTrue(host.waitForLink(up: true), "veth carrier never came up")
        return (host, peer)
    }

    private func xdpAttached() throws -> Bool {
        try NetworkNamespaceFixture.hasXDPProgram(XCTUnwrap(veth).hostName)
    }

    func testNativeModeCarriesFramesByteExactBothWays() throws {
        let (host, peer) = try openPorts()
        XCTAssertEqual(host.socket.attachedMode, .native)
        XCTAssertTrue(try xdpAttached())
        let marker = UInt32.random(in: 1...UInt32.max)
        let sent = (0..<40).map { Frames.make(length: 60 + $0 * 36, marker: marker, sequence: $0) }
        XCTAssertEqual(peer.send(Array(sent[0..<20])), 20)
        XCTAssertEqual(peer.send(Array(sent[20...])), 20)
        XCTAssertEqual(host.collect(marker, count: sent.count), sent)

        let back = (0..<32).map { Frames.make(length: 64 + $0 * 45, marker: marker, sequence: $0, destination: Frames.peerMAC, source: Frames.hostMAC) }
        XCTAssertEqual(host.send(back), 32)
        XCTAssertEqual(peer.collect(marker, count: back.count), back)

        let stats = host.statistics.snapshot()
        XCTAssertGreaterThanOrEqual(stats.receivedPackets, UInt64(sent.count))
        XCTAssertGreaterThanOrEqual(stats.receivedBytes, UInt64(sent.reduce(0) { $0 + $1.count }))
        XCTAssertEqual(stats.transmittedPackets, 32)
        XCTAssertEqual(stats.transmittedBytes, UInt64(back.reduce(0) { $0 + $1.count }))
        XCTAssertEqual(stats.receiveDrops, 0)
        XCTAssertEqual(stats.transmitDrops, 0)
        XCTAssertEqual(stats.transmitSendErrors, 0)
    }

    func testManyBurstsRecycleEveryUMEMFrame() throws {
        // More frames than the UMEM has in each direction: the fill and completion rings
        // must hand every frame back.
        let (host, peer) = try openPorts()
        let marker = UInt32.random(in: 1...UInt32.max)
        var received = 0
        var delivered = 0
        for round in 0..<200 {
            let burst = (0..<32).map { Frames.make(length: 128, marker: marker, sequence: round * 32 + $0, destination: Frames.peerMAC, source: Frames.hostMAC) }
            delivered += host.send(burst)
            received += peer.collect(marker, count: 32, timeout: 1.0).count
        }
        XCTAssertEqual(delivered, 6400)
        XCTAssertEqual(received, 6400)
        var inbound = 0
        for round in 0..<150 {
            let burst = (0..<32).map { Frames.make(length: 100, marker: marker, sequence: round * 32 + $0) }
            XCTAssertEqual(peer.send(burst), 32)
            inbound += host.collect(marker, count: 32, timeout: 1.0).count
        }
        XCTAssertEqual(inbound, 4800)
    }

    /// Two queues, a socket each on one UMEM: the peer sends from CPU 0 and then from CPU 1
    /// (AF_PACKET picks the transmit queue by the sending CPU, and a veth delivers on the
    /// receive queue of the same number), and every frame arrives.
    func testTwoQueuesShareOneUMEMAndBothDeliver() throws {
        guard ProcessInfo.processInfo.activeProcessorCount >= 2 else {
            print("skipping: needs 2 CPUs to send on two queues")
            throw XCTSkip("needs 2 CPUs to send on two queues")
        }
        let veth = try PortVeth(ip: PortVeth.skipUnlessPossible(), queues: 2)
        defer { veth.destroy() }
        let host = try AfXdpPort.open(interface: veth.hostName, configuration: XDPSocket.Configuration(queue: 0, queueCount: 2, mode: .native))
        XCTAssertEqual(host.sockets.map(\.queue), [0, 1])
        XCTAssertNotEqual(host.pollDescriptor, host.socket.pollDescriptor, "several queues wake through one epoll set")
        let peer = try veth.openPeerPort()
        XCTAssertTrue(host.waitForLink(up: true), "veth carrier never came up")
        let flows = (0..<64).map { Self.udpFrame(sourcePort: UInt16(10_000 + $0 * 7)) }
        // A thread of its own, so the test's thread keeps its CPUs.
        let sender = Thread {
            for cpu in 0..<2 {
                try? SystemThread.pinCurrent(to: [cpu])
                XCTAssertEqual(peer.send(Array(flows[(cpu * 32)..<(cpu * 32 + 32)])), 32)
            }
        }
        sender.start()
        let buffers = TestBuffers()
        var received: [[UInt8]] = []
        let deadline = Date().addingTimeInterval(2)
        while received.count < flows.count && Date() < deadline {
            let n = host.receiveBurst(into: buffers.buffers, maxCount: buffers.count)
            for i in 0..<n where Array(buffers.bytes(i)[6..<12]) == Frames.peerMAC { received.append(buffers.bytes(i)) }
            if n == 0 { usleep(1000) }
        }
        XCTAssertEqual(Set(received), Set(flows), "every flow arrived once, whatever its queue")
        XCTAssertEqual(received.count, flows.count)
        let redirected = try (0..<2).map { queue in try Self.ethtoolCounter(veth, "rx_queue_\(queue)_xdp_redirect") }
        print("[af-xdp] frames redirected per queue: \(redirected)")
        XCTAssertTrue(redirected.allSatisfy { $0 >= 32 }, "each queue carried its CPU's 32 frames: \(redirected)")

        // A sleeping poll thread waits on the port's epoll set: a frame on queue 1 wakes it.
        _ = host.collect(0, count: Int.max, timeout: 0.05)  // drain link noise
        XCTAssertFalse(host.hasPendingFrames())
        let epoll = try Epoll()
        try epoll.add(host.pollDescriptor, events: Epoll.input | Epoll.edgeTriggered, token: 5)
        let late = Thread {
            try? SystemThread.pinCurrent(to: [1])
            XCTAssertEqual(peer.send([Self.udpFrame(sourcePort: 9)]), 1)
        }
        late.start()
        var events: [Epoll.Event] = []
        try epoll.wait(into: &events, timeoutMilliseconds: 1000)
        XCTAssertEqual(events.map(\.token), [5], "a frame on the second queue wakes the set")
        XCTAssertTrue(host.hasPendingFrames())
        XCTAssertGreaterThanOrEqual(host.receiveBurst(into: buffers.buffers, maxCount: buffers.count), 1)
    }

    /// An IPv4/UDP frame from the peer to the host end (the transmit hash reads its ports).
    private static func udpFrame(sourcePort: UInt16) -> [UInt8] {
        var frame = Frames.hostMAC + Frames.peerMAC + [0x08, 0x00]
        frame += [0x45, 0, 0, 46, 0, 0, 0x40, 0, 64, 17, 0, 0, 10, 200, 99, 2, 10, 200, 99, 1]
        frame += [UInt8(sourcePort >> 8), UInt8(sourcePort & 0xFF), 0x13, 0x88, 0, 26, 0, 0]
        frame += (0..<18).map { UInt8(truncatingIfNeeded: Int(sourcePort) &+ $0) }
        return frame
    }

    /// One of `ethtool -S`'s counters of the host end.
    private static func ethtoolCounter(_ veth: PortVeth, _ name: String) throws -> UInt64 {
        let text = try NetworkNamespaceFixture.run(["/usr/sbin/ethtool", "-S", veth.hostName], check: true).output
        let line = text.split(separator: "\n").first { $0.trimmingCharacters(in: .whitespaces).hasPrefix(name + ":") }
        return UInt64(line?.split(separator: ":").last?.trimmingCharacters(in: .whitespaces) ?? "") ?? 0
    }

    func testOffloadRequestsAndBadLengthsAreDroppedOnTransmit() throws {
        let (host, peer) = try openPorts()
        XCTAssertEqual(host.acceptedOffloadFeatures, 0, "XDP frames carry no virtio-net header")
        // The forwarder resolves offloads for this port, so any request left is dropped.
        host.checkTransmitDrops(to: peer) { checksum, gso in
            checksum.flags = VirtioNetHeader.flagNeedsChecksum
            gso.gsoType = VirtioNetHeader.gsoTCPv4
        }
    }

    func testPendingFramesAndPollDescriptorWakeTheSleeper() throws {
        let (host, peer) = try openPorts()
        try host.checkPendingFrameWakesEpoll(from: peer)
    }

    func testClosingThePortDetachesTheProgram() throws {
        try {
            let (host, _) = try openPorts()
            XCTAssertTrue(try xdpAttached())
            withExtendedLifetime(host) {}
        }()
        XCTAssertFalse(try xdpAttached(), "the program outlived its port")
    }

    func testAttachFailuresSayWhyAndLeaveNothingBehind() throws {
        let veth = try XCTUnwrap(veth)
        XCTAssertThrowsError(try AfXdpPort.open(interface: "vsw-none0")) { error in
            XCTAssertEqual((error as? XDPSocket.Failure)?.kind, .noSuchInterface)
        }
        // veth has one queue.
        XCTAssertThrowsError(try AfXdpPort.open(interface: veth.hostName, configuration: XDPSocket.Configuration(queue: 3, mode: .native))) { error in
            XCTAssertEqual((error as? XDPSocket.Failure)?.kind, .noSuchQueue, "\(error)")
        }
        XCTAssertFalse(try xdpAttached(), "a failed bind left the program attached")
        // The loopback device has no native XDP; generic works on any device (with an MTU
        // that fits a UMEM frame).
        let namespace = "/var/run/netns/\(veth.namespace)"
        try veth.run(["netns", "exec", veth.namespace, veth.ip, "link", "set", "lo", "mtu", "1500", "up"])
        func openLoopback(_ mode: XDPSocket.AttachMode) throws -> AfXdpPort {
            try NetworkNamespace.run(path: namespace) {
                Result { () throws(XDPSocket.Failure) in try AfXdpPort.open(interface: "lo", configuration: XDPSocket.Configuration(queue: 0, mode: mode)) }
            }.get()
        }
        XCTAssertThrowsError(try openLoopback(.native)) { error in
            XCTAssertEqual((error as? XDPSocket.Failure)?.kind, .modeUnsupported, "\(error)")
        }
        let generic = try openLoopback(.auto)
        XCTAssertEqual(generic.socket.attachedMode, .generic)
        XCTAssertFalse(generic.socket.zeroCopy)
        // A second program on the same interface is refused.
        let first = try AfXdpPort.open(interface: veth.hostName)
        XCTAssertThrowsError(try AfXdpPort.open(interface: veth.hostName)) { error in
            XCTAssertEqual((error as? XDPSocket.Failure)?.kind, .busy, "\(error)")
        }
        withExtendedLifetime(first) {}
    }
}
