import CVhostShims
import Glibc
import VhostSystem

/// xorshift64*: cheap, seedable randomness for the guest-side writers (the system generator
/// costs a syscall now and then, and the writer runs flat out).
struct HostileRandom {
    private var state: UInt64

    init(seed: UInt64 = UInt64.random(in: 1...UInt64.max)) { state = seed == 0 ? 0x9e37_79b9_7f4a_7c15 : seed }

    mutating func next() -> UInt64 {
        state ^= state >> 12
        state ^= state << 25
        state ^= state >> 27
        return state &* 0x2545_f491_4f6c_dd1d
    }

    mutating func below(_ bound: Int) -> Int { Int(next() % UInt64(bound)) }

    mutating func pick<T>(_ choices: [T]) -> T { choices[below(choices.count)] }
}

/// A second guest thread that keeps rewriting rings 0 and 1 of the standard layout while the
/// daemon walks them: descriptors (address, length, flags, next: NEXT loops, INDIRECT where it
/// is not allowed, indirect tables that change under the walker), avail entries and avail.idx.
/// A guest owns its memory and may race its own driver on purpose; the daemon must copy each
/// field once and validate the copy (ARCHITECTURE.md "Hot path rules"), so whatever it reads
/// at whatever moment can cost this session at most.
final class GuestRingScribbler {
    private let memory: GuestMemoryFile
    /// 0 while running; the writer thread polls it (relaxed: it only has to stop eventually).
    private let stopFlag = UnsafeMutablePointer<UInt32>.allocate(capacity: 1)
    private var thread: SystemThread?
    private let seed: UInt64

    /// Where the scribbled indirect tables live (inside the standard layout's buffer area).
    static let indirectTable = 0x30000
    static let ringSize = 256

    init(memory: GuestMemoryFile, seed: UInt64 = UInt64.random(in: 1...UInt64.max)) {
        self.memory = memory
        self.seed = seed
        stopFlag.initialize(to: 0)
    }

    deinit {
        stop()
        stopFlag.deallocate()
    }

    func start() {
        thread = try? SystemThread(name: "guest-scribbler") { [memory, stopFlag, seed] in
            var random = HostileRandom(seed: seed)
            while vhost_shims_load_relaxed_u32(stopFlag) == 0 {
                for _ in 0..<64 { Self.scribbleOnce(memory, &random) }
            }
        }
    }

    func stop() {
        vhost_shims_store_relaxed_u32(stopFlag, 1)
        thread?.join()
        thread = nil
    }

    // MARK: One rewrite

    private static func scribbleOnce(_ memory: GuestMemoryFile, _ random: inout HostileRandom) {
        let ring = random.below(2)
        switch random.below(8) {
        case 0..<4: rewriteDescriptor(memory, ring: ring, &random)
        case 4: rewriteIndirectEntry(memory, &random)
        case 5, 6: rewriteAvailEntry(memory, ring: ring, &random)
        default: moveAvailIndex(memory, ring: ring, &random)
        }
    }

    private static func rewriteDescriptor(_ memory: GuestMemoryFile, ring: Int, _ random: inout HostileRandom) {
        let index = random.below(ringSize)
        memory.writeDescriptor(ring, index, address: address(memory, &random), length: length(&random),
                               flags: flags(&random), next: next(after: index, &random))
    }

    private static func rewriteIndirectEntry(_ memory: GuestMemoryFile, _ random: inout HostileRandom) {
        let index = random.below(ringSize)
        memory.writeGuest(indirectTable + index * 16,
                          descriptorBytes(address: address(memory, &random), length: length(&random),
                                          flags: flags(&random), next: next(after: index, &random)))
    }

    private static func rewriteAvailEntry(_ memory: GuestMemoryFile, ring: Int, _ random: inout HostileRandom) {
        let slot = random.below(ringSize)
        let head = random.below(8) == 0 ? UInt16(truncatingIfNeeded: random.next()) : UInt16(random.below(ringSize))
        memory.mapping.base.storeBytes(of: head.littleEndian, toByteOffset: ring * 0x4000 + 0x1004 + slot * 2, as: UInt16.self)
    }

    /// Mostly a plausible step forward; sometimes a jump past the ring size, or backwards.
    private static func moveAvailIndex(_ memory: GuestMemoryFile, ring: Int, _ random: inout HostileRandom) {
        let current = memory.availIndex(ring)
        let value = random.below(16) == 0 ? UInt16(truncatingIfNeeded: random.next()) : current &+ UInt16(random.below(33))
        memory.setAvailIndex(ring, value)
    }

    // MARK: Field values: plausible ones most of the time, so the walker gets deep

    private static func address(_ memory: GuestMemoryFile, _ random: inout HostileRandom) -> UInt64 {
        switch random.below(8) {
        case 0..<5: UInt64(0x10000 + random.below(0x20000))  // the buffer area
        case 5: UInt64(indirectTable)
        case 6: UInt64(memory.size - 8)  // runs off the end of the region
        default: random.next()
        }
    }

    private static func length(_ random: inout HostileRandom) -> UInt32 {
        random.pick([0, 1, 12, 14, 60, 72, 1514, 4096, 0x10000, 0xffff_ffff, UInt32(16 * ringSize),
                     UInt32(16 * random.below(2 * ringSize)), UInt32(truncatingIfNeeded: random.next())])
    }

    /// NEXT = 1, WRITE = 2, INDIRECT = 4 in every combination, or anything.
    private static func flags(_ random: inout HostileRandom) -> UInt16 {
        random.below(9) == 8 ? UInt16(truncatingIfNeeded: random.next()) : UInt16(random.below(8))
    }

    /// Itself (a one-descriptor loop), a neighbour (long chains, loops through the table),
    /// anywhere in the ring, or out of range.
    private static func next(after index: Int, _ random: inout HostileRandom) -> UInt16 {
        switch random.below(6) {
        case 0: UInt16(index)
        case 1, 2: UInt16((index + 1) % ringSize)
        case 3: UInt16((index + ringSize - 1) % ringSize)
        case 4: UInt16(random.below(ringSize))
        default: UInt16(truncatingIfNeeded: random.next())
        }
    }
}
