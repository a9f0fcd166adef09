import Virtio
import VhostSystem

/// The guest (driver) side of one virtqueue placed in a `GuestMemoryFixture`, in either ring
/// layout: what a virtio-net driver does with a queue. Post a frame to send
/// (`postTransmit`), post buffers to receive into (`postReceive`), take back what the device
/// used (`takeUsed`) and read what it wrote (`receivedBytes`). Buffers come from a bump
/// allocator in [dataAddress, dataAddress + dataSize) that wraps: fine for tests where the
/// device completes everything in the burst.
///
/// `SplitGuestDriverRing` (VIRTIO 1.1 2.7) and `PackedGuestDriverRing` (2.8) say how a chain is
/// made available and how used entries are found, and give raw access (any descriptor, index,
/// flag or event field) so hostile tests and the hostile tool can build any ring state.
public class GuestDriverRing: @unchecked Sendable {  // test-only; used from one thread
    /// Descriptor flags, the same in both layouts (2.7.5, 2.8.2).
    public static let next: UInt16 = 1
    public static let write: UInt16 = 2
    public static let indirect: UInt16 = 4

    public let fixture: GuestMemoryFixture
    public let size: Int
    public let dataAddress: UInt64
    public let dataSize: UInt64
    private var dataCursor: UInt64 = 0
    /// The buffers of each posted receive chain (by its id: the head index of a split ring,
    /// the buffer id of a packed one), to read what the device wrote.
    public private(set) var receiveBuffers: [UInt16: [(address: UInt64, length: Int)]] = [:]

    init(fixture: GuestMemoryFixture, size: Int, dataAddress: UInt64, dataSize: UInt64) {
        self.fixture = fixture
        self.size = size
        self.dataAddress = dataAddress
        self.dataSize = dataSize
    }

    // MARK: What each layout does its own way

    /// Writes a chain over `buffers` (guest-physical address, length), directly or through an
    /// indirect table, and makes it available to the device; returns its id.
    public func makeAvailable(_ buffers: [(UInt64, Int)], writable: Bool, indirect: Bool) -> UInt16 {
        preconditionFailure("\(Self.self) does not make chains available")
    }

    /// The used entries the device published since the last call, in ring order: the id of
    /// each chain and the bytes the device wrote into it.
    public func takeUsed() -> [(id: UInt16, length: UInt32)] {
        preconditionFailure("\(Self.self) does not read used entries")
    }

    // MARK: Allocation

    /// `length` bytes of the data area (16-byte aligned); wraps to the start when full.
    public func allocateBuffer(_ length: Int) -> UInt64 {
        let rounded = (UInt64(length) + 15) & ~15
        precondition(rounded <= dataSize, "buffer larger than the ring's data area")
        if dataCursor + rounded > dataSize { dataCursor = 0 }
        defer { dataCursor += rounded }
        return dataAddress + dataCursor
    }

    // MARK: Driver operations

    /// Serializes header (`headerSize` bytes) + frame, splits it into descriptors of the
    /// given `segments` lengths (default: one descriptor), chains them directly or through an
    /// indirect table, and makes the chain available. Returns its id.
    @discardableResult
    public func postTransmit(frame: [UInt8], header: VirtioNetHeader = VirtioNetHeader(), headerSize: Int,
                             segments: [Int]? = nil, indirect: Bool = false) -> UInt16 {
        var bytes = [UInt8](repeating: 0, count: headerSize)
        bytes.withUnsafeMutableBytes { header.store(to: $0.baseAddress!, size: headerSize) }
        bytes += frame
        let lengths = segments ?? [bytes.count]
        precondition(lengths.reduce(0, +) == bytes.count, "segments must add up to header + frame")
        var buffers: [(UInt64, Int)] = []
        var offset = 0
        for length in lengths {
            let address = allocateBuffer(length)
            fixture.write(Array(bytes[offset..<offset + length]), at: address)
            buffers.append((address, length))
            offset += length
        }
        return makeAvailable(buffers, writable: false, indirect: indirect)
    }

    /// Makes one receive chain of buffers of the given sizes available; returns its id.
    @discardableResult
    public func postReceive(bufferSizes: [Int], indirect: Bool = false) -> UInt16 {
        postReceive(buffers: bufferSizes.map { (allocateBuffer($0), $0) }, indirect: indirect)
    }

    /// Makes one receive chain over explicit guest-physical buffers available (each filled
    /// with 0xEE first, so what the device did not write shows); returns its id.
    @discardableResult
    public func postReceive(buffers: [(address: UInt64, length: Int)], indirect: Bool = false) -> UInt16 {
        for buffer in buffers { fixture.fill(0xEE, at: buffer.address, count: buffer.length) }
        let id = makeAvailable(buffers.map { ($0.address, $0.length) }, writable: true, indirect: indirect)
        receiveBuffers[id] = buffers
        return id
    }

    /// The first `length` bytes the device wrote into a receive chain, across its buffers.
    public func receivedBytes(id: UInt16, length: Int) -> [UInt8] {
        var result: [UInt8] = []
        for buffer in receiveBuffers[id] ?? [] where result.count < length {
            result += fixture.read(at: buffer.address, count: min(buffer.length, length - result.count))
        }
        return result
    }
}
