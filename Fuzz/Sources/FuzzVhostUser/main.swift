// Fuzz target (a): vhost-user message decoding and dispatch.
//
// Each input is a small program run against a fresh VhostUserDevice + VhostUserConnection
// over a socketpair (the connection is driven on this thread, as in
// Tests/VhostUserTests/DirectSession.swift). Ops (first byte of each step, mod 8):
//
//   0  raw message: u8 request code, u8 flags, u16 declared size, u16 payload length, the
//      payload bytes, then an fd list (u8 count & 15, one kind byte each)
//   1  well-formed message for a known request: u8 request, payload of the rule's exact
//      size from the input, fds as in 0, need_reply set
//   2  a canned session prefix: features, protocol features, SET_MEM_TABLE on the shared
//      guest memfd, rings 0 and 1 (NUM/BASE/ADDR/KICK/CALL/ENABLE): the device is ready
//   3  write guest memory: u16 offset, u8 length, bytes (ring contents, descriptors)
//   4  one dequeue and one enqueue burst on every queue published to the "dataplane"
//   5  only part of a message: u8 byte count of a fuzzed header+payload, then pump
//   6  read and drop whatever the back-end replied
//   7  disconnect: close the front-end socket and let the back-end see it
//
// After every step the connection handles what is readable. After the input, the session
// is closed and the process must be back to the fds and memfd mappings it had before:
// anything else is a leak and aborts (a finding).
import FuzzSupport
import Glibc
import Logging
import VhostSystem
import VhostUser
import Virtio

final class FuzzDelegate: VhostUserDeviceDelegate, @unchecked Sendable {
    var queues: [ActiveQueue] = []
    func deviceConnected(_ device: VhostUserDevice) {}
    func deviceQueuesChanged(_ device: VhostUserDevice, queues: [ActiveQueue]) { self.queues = queues }
    func deviceReady(_ device: VhostUserDevice) {}
    func deviceDestroyed(_ device: VhostUserDevice) { queues = [] }
    func vringStateChanged(_ device: VhostUserDevice, vringIndex: Int, enabled: Bool) {}
    func featuresChanged(_ device: VhostUserDevice, features: UInt64) {}
    func migrationStateChanged(_ device: VhostUserDevice, event: VhostUserMigrationEvent) {}
    func deviceRequestsAnnounce(_ device: VhostUserDevice, mac: [UInt8]) {}
    func deviceReportedError(_ device: VhostUserDevice, message: String) {}
}

/// Guest memory shared by every input (re-zeroed each time): 64 KiB at guest-physical 0,
/// front-end virtual 0x7f00_0000_0000. Ring i: descriptors at i*0x4000, avail +0x1000, used +0x2000.
let guestSize = 0x10000
let guestUVA: UInt64 = 0x7f00_0000_0000
let guestFD = try! MemFD.create(name: "fuzz-guest", size: guestSize)
let guestMapping = try! MemoryMapping(descriptor: guestFD, length: guestSize)
let quietLogger: Logger = {
    var logger = Logger(label: "fuzz", factory: { _ in SwiftLogNoOpLogHandler() })
    logger.logLevel = .critical
    return logger
}()
let packetStorage = UnsafeMutableRawPointer.allocate(byteCount: 8 * 2048, alignment: 64)
var warmedUp = false
let debugging = getenv("FUZZ_DEBUG") != nil

/// An fd of a kind the input picks: what a hostile front-end might attach.
func makeDescriptor(_ kind: UInt8, _ input: inout FuzzInput) -> FileDescriptor? {
    switch kind % 9 {
    case 0: return (try? EventFD())?.descriptor
    case 1: return try? FileDescriptor.duplicate(guestFD.rawValue)
    case 2:
        // A memfd of a fuzzed size (0 .. 255 pages): short files must be refused, not mapped.
        return try? MemFD.create(name: "fuzz-region", size: Int(input.u8()) * 4096)
    case 3:
        let raw = open("/dev/null", O_RDWR | O_CLOEXEC)
        return raw >= 0 ? FileDescriptor(adopting: raw) : nil
    case 4:
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { return nil }
        close(fds[1])
        return FileDescriptor(adopting: fds[0])
    case 5:
        guard let (a, _) = try? UnixSocket.pair() else { return nil }
        return a
    case 6:
        let raw = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        return raw >= 0 ? FileDescriptor(adopting: raw) : nil
    case 7:
        let raw = open("/proc/self/stat", O_RDONLY | O_CLOEXEC)  // regular-looking, size 0, cannot be mapped usefully
        return raw >= 0 ? FileDescriptor(adopting: raw) : nil
    default:
        return try? MemFD.create(name: "fuzz-empty", size: 0)
    }
}

func readDescriptors(_ input: inout FuzzInput) -> [FileDescriptor] {
    let count = Int(input.u8() & 15)  // up to 15: more than the 8 a message may carry
    var fds: [FileDescriptor] = []
    for _ in 0..<count { if let fd = makeDescriptor(input.u8(), &input) { fds.append(fd) } }
    return fds
}

final class Session {
    let delegate = FuzzDelegate()
    let device: VhostUserDevice
    let connection: VhostUserConnection
    var frontend: FileDescriptor?
    let kicks: [EventFD]

    init() {
        device = try! VhostUserDevice(
            configuration: VhostUserDeviceConfiguration(name: "fuzz0", socketPath: "/nonexistent/fuzz0.sock", maxQueuePairs: 2,
                                                        offeredFeatures: VhostUserDevice.defaultOfferedFeatures),
            delegate: delegate, logger: quietLogger)
        let (a, b) = try! UnixSocket.pair()
        try! a.setNonBlocking()
        try! b.setNonBlocking()
        frontend = a
        connection = VhostUserConnection(device: device, socket: b)
        kicks = [try! EventFD(), try! EventFD()]
    }

    func pump() { connection.handleReadable(maxMessages: 1024) }

    /// Sends everything (pumping the back-end while the socket is full); false if the
    /// back-end went away.
    @discardableResult
    func send(_ bytes: [UInt8], fds: [FileDescriptor] = []) -> Bool {
        guard let frontend else { return false }
        var offset = 0
        var attached = fds
        var spins = 0
        while offset < bytes.count {
            do {
                offset += try UnixSocket.send(frontend, bytes: Array(bytes[offset...]), fds: attached)
                attached = []
            } catch {
                guard error.wouldBlock, !connection.isClosed, spins < 1000 else { return false }
                spins += 1
                pump()
                drain()
            }
        }
        pump()
        return true
    }

    func drain() {
        guard let frontend else { return }
        while let received = try? UnixSocket.receive(frontend, maxBytes: 65536, maxDescriptors: 8), !received.bytes.isEmpty {}
    }

    func message(_ request: UInt32, flags: UInt32 = 1, size: UInt32? = nil, _ payload: [UInt8], fds: [FileDescriptor] = []) {
        var w = ByteWriter()
        w.u32(request)
        w.u32(flags)
        w.u32(size ?? UInt32(payload.count))
        w.append(payload)
        send(w.bytes, fds: fds)
        for fd in fds { fd.close() }
    }

    func u64(_ v: UInt64) -> [UInt8] { var w = ByteWriter(); w.u64(v); return w.bytes }
    func state(_ i: UInt32, _ n: UInt32) -> [UInt8] { var w = ByteWriter(); w.u32(i); w.u32(n); return w.bytes }

    /// The usual session start, every message with need_reply (REPLY_ACK).
    func cannedSetup(_ input: inout FuzzInput) {
        let selector = input.u8()
        let ack: UInt32 = 1 | (1 << 3)
        let features = VhostUserDevice.defaultOfferedFeatures & ~(selector & 1 != 0 ? VhostUserDevice.logAllFeature : 0)
        message(1, [])
        message(15, [])
        message(16, flags: ack, u64(VhostUserProtocolFeature.supportedMask))
        message(2, flags: ack, u64(features))
        message(3, flags: ack, [])
        var table = ByteWriter()
        table.u32(1); table.u32(0)
        table.u64(0); table.u64(UInt64(guestSize)); table.u64(guestUVA); table.u64(0)
        message(5, flags: ack, table.bytes, fds: [try! FileDescriptor.duplicate(guestFD.rawValue)])
        let size: UInt32 = selector & 2 != 0 ? 8 : 256
        for ring in 0..<UInt32(2) {
            let base = guestUVA + UInt64(ring) * 0x4000
            message(8, flags: ack, state(ring, size))
            message(10, flags: ack, state(ring, UInt32(input.u16())))
            var addr = ByteWriter()
            addr.u32(ring); addr.u32(0); addr.u64(base); addr.u64(base + 0x2000); addr.u64(base + 0x1000); addr.u64(0)
            message(9, flags: ack, addr.bytes)
            message(12, flags: ack, u64(UInt64(ring)), fds: [try! FileDescriptor.duplicate(kicks[Int(ring)].rawValue)])
            message(13, flags: ack, u64(UInt64(ring) | (1 << 8)))
            message(18, flags: ack, state(ring, 1))
        }
        drain()
    }

    /// What a poll thread would do with the published queues.
    func runBursts(_ input: inout FuzzInput) {
        let buffers = UnsafeMutablePointer<PacketBuffer>.allocate(capacity: 8)
        defer { buffers.deallocate() }
        for i in 0..<8 { buffers[i] = PacketBuffer(data: packetStorage + i * 2048, capacity: 2048) }
        let frameLength = 14 + Int(input.u16() % 2100)  // sometimes larger than the capacity
        for queue in delegate.queues {
            if queue.isGuestTransmit {
                let n = queue.queue.dequeueBurst(into: buffers, maxCount: 8)
                if debugging { print("dequeued \(n) from vring \(queue.vringIndex)") }
            } else {
                for i in 0..<4 {
                    buffers[i].length = min(frameLength + i, 2048 + i)  // > capacity is a drop, not a copy
                    buffers[i].header = VirtioNetHeader()
                }
                let n = queue.queue.enqueueBurst(UnsafePointer(buffers), count: 4)
                if debugging { print("enqueued \(n) into vring \(queue.vringIndex)") }
            }
        }
    }
}

/// Payload sizes the rules table expects, to reach the handlers past the size check.
func exactSize(_ request: VhostUserRequest, _ input: inout FuzzInput) -> Int {
    switch request {
    case .setMemTable: return 8 + 32 * Int(input.u8() % 9)
    case .setLogFd: return Int(input.u8() % 9)
    case .setLogBase: return 16
    case .setVringAddr: return 40
    case .addMemReg, .remMemReg: return 40
    case .setVringNum, .setVringBase, .getVringBase, .setVringEnable: return 8
    case .getFeatures, .setOwner, .resetOwner, .getProtocolFeatures, .getQueueNum, .resetDevice, .getMaxMemSlots, .getStatus: return 0
    default: return 8
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    if !warmedUp {
        // Warm up lazily created state (logging, EventFD, socket buffers) once.
        _ = Session()
        warmedUp = true
    }
    // Per input, not once: libFuzzer itself opens fds between inputs (the symbolizer's pipes).
    let baseline = (fds: FileDescriptor.openCount(), memfdMaps: memfdMappingCount())
    guestMapping.base.initializeMemory(as: UInt8.self, repeating: 0, count: guestSize)
    var input = FuzzInput(fuzzBytes(data, size))
    do {
        let session = Session()
        var steps = 0
        while !input.isAtEnd && steps < 64 && !session.connection.isClosed {
            steps += 1
            switch input.u8() % 8 {
            case 0:
                let request = UInt32(input.u8())
                let flags = UInt32(input.u8())
                let declared = input.u16()
                let length = Int(input.u16() % 600)
                let payload = input.take(length)
                let fds = readDescriptors(&input)
                // Declared size: the real length unless the input says otherwise (framing errors).
                session.message(request, flags: flags, size: declared & 0x8000 != 0 ? UInt32(declared & 0x7fff) : nil, payload, fds: fds)
            case 1:
                let all = VhostUserRequest.allCases
                let request = all[Int(input.u8()) % all.count]
                let length = exactSize(request, &input)
                var payload = input.take(length)
                payload += [UInt8](repeating: 0, count: length - payload.count)
                let fds = readDescriptors(&input)
                session.message(request.rawValue, flags: 1 | (1 << 3), payload, fds: fds)
            case 2:
                session.cannedSetup(&input)
            case 3:
                let offset = Int(input.u16()) % guestSize
                let bytes = input.take(Int(input.u8()))
                let count = min(bytes.count, guestSize - offset)
                for i in 0..<count { guestMapping.base.storeBytes(of: bytes[i], toByteOffset: offset + i, as: UInt8.self) }
            case 4:
                session.runBursts(&input)
            case 5:
                let count = Int(input.u8() % 24)
                var partial = ByteWriter()
                partial.u32(UInt32(input.u8())); partial.u32(1); partial.u32(UInt32(input.u8()))
                partial.append(input.take(16))
                session.send(Array(partial.bytes.prefix(count)))
            case 6:
                session.drain()
            default:
                session.frontend?.close()
                session.frontend = nil
                session.pump()
            }
        }
        session.pump()
        session.runBursts(&input)
        session.connection.close(reason: nil)
        session.frontend?.close()
    }
    let fds = FileDescriptor.openCount()
    let maps = memfdMappingCount()
    fuzzInvariant(fds == baseline.fds, "fd leak: \(fds) open after the input, \(baseline.fds) before: \(openDescriptorList())")
    fuzzInvariant(maps == baseline.memfdMaps, "memfd mapping leak: \(maps) after the input, \(baseline.memfdMaps) before")
    return 0
}

runFuzzer(fuzzOne)
