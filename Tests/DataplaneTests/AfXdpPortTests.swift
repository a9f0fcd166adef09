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
