import Foundation
import VhostSystem
import VhostUser

/// A guest without a VM that sends whatever frames a test makes (a hostile guest: random source
/// MACs, spoofed addresses): a `FakeFrontend` on a vhost-user port of the daemon, negotiated with
/// split rings over `FakeFrontendMemory`, its two rings set up with kick eventfds. Frames go out
/// through the transmit ring (1), one descriptor each, a ring's worth at most in flight. Nothing
/// is posted on the receive ring (0), so the switch drops what it sends to this port.
public final class FakeGuestTransmitter: @unchecked Sendable {  // used from one thread at a time
    public static let headerSize = 12  // VERSION_1: the virtio-net header with num_buffers
    /// Each ring slot has its own buffer of this size at 0x10000 + slot * slotBytes.
    public static let slotBytes = 128
    public static let maxFrameBytes = slotBytes - headerSize

    public let frontend: FakeFrontend
    public let memory: FakeFrontendMemory
    private let kicks: [EventFD]
    private var availIndex: UInt16 = 0
    /// Frames the switch has taken from the transmit ring so far.
    public private(set) var taken = 0

    /// Connects to `socketPath` and sets the device up (features the switch offers, without
    /// LOG_ALL and RING_PACKED).
    public convenience init(socketPath: String) throws {
        try self.init(frontend: try FakeFrontend.connect(path: socketPath), memory: try FakeFrontendMemory(name: "fake-transmitter"),
                      peer: socketPath)
    }

    /// Sets the device up over a connected `frontend` (with a `pump` when the test drives
    /// the back-end itself), its rings in `memory`.
    public init(frontend: FakeFrontend, memory: FakeFrontendMemory, peer: String = "the back-end") throws {
        self.frontend = frontend
        self.memory = memory
        guard let offered = try frontend.request(.getFeatures)?.u64, offered & (1 << 32) != 0 else {
            throw FakeGuestError("no VERSION_1 in GET_FEATURES from \(peer)")
        }
        let features = offered & ~(UInt64(1) << 26) & ~(UInt64(1) << 34)
        guard try frontend.negotiate(features: features, memory: memory) else { throw FakeGuestError("negotiation with \(peer) failed") }
        kicks = [try EventFD(), try EventFD()]
        for ring in 0..<2 {
            guard try frontend.setUpRing(ring, memory: memory, kick: kicks[ring].descriptor, call: nil), try frontend.enableRing(ring) else {
                throw FakeGuestError("setting up ring \(ring) on \(peer) failed")
            }
        }
    }

    /// Sends `frames` (each at most `maxFrameBytes`), posting at most a ring's worth before
    /// waiting until the switch has taken them all (used.idx caught up); throws when it stops
    /// taking them for `timeout` seconds.
    public func transmit(_ frames: [[UInt8]], timeout: TimeInterval = 5) throws {
        let ring = memory.ring(1)
        var next = 0
        while next < frames.count {
            let batch = frames[next..<min(frames.count, next + FakeFrontendMemory.ringSize)]
            for frame in batch {
                precondition(frame.count <= Self.maxFrameBytes, "frame larger than a slot")
                let slot = Int(availIndex) % FakeFrontendMemory.ringSize
                let buffer = UInt64(0x10000 + slot * Self.slotBytes)
                // The header before it stays all zeros (no offloads): the memfd starts zeroed.
                memory.fixture.write(frame, at: buffer + UInt64(Self.headerSize))
                ring.writeDescriptor(slot, address: buffer, length: UInt32(Self.headerSize + frame.count))
                ring.writeAvailSlot(availIndex, head: UInt16(slot))
                availIndex &+= 1
            }
            ring.setAvailIndex(availIndex)
            kicks[1].signal()
            let deadline = Date().addingTimeInterval(timeout)
            while ring.usedIndex != availIndex {
                guard Date() < deadline else {
                    throw FakeGuestError("the switch took no more frames for \(timeout) s (used \(ring.usedIndex), avail \(availIndex))")
                }
                usleep(200)  // not a spin: the flooding test shares two CPUs with the switch and testpmd
            }
            next += batch.count
            taken += batch.count
        }
    }

    public func close() { frontend.close() }

    /// A minimal Ethernet frame (60 bytes, IPv4 ethertype, zero payload).
    public static func frame(destination: [UInt8], source: [UInt8]) -> [UInt8] {
        destination + source + [0x08, 0x00] + [UInt8](repeating: 0, count: 46)
    }

    public struct FakeGuestError: Error, CustomStringConvertible {
        public var description: String
        init(_ description: String) { self.description = description }
    }
}
