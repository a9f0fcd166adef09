import CVhostShims
import Glibc
import TestSupport
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
    /// The guest's two rings (receive, transmit), written through the test kit's split-ring driver.
    private let rings: [SplitGuestDriverRing]
    private let memorySize: UInt64
    /// 0 while running; the writer thread polls it (relaxed: it only has to stop eventually).
    private let stopFlag = UnsafeMutablePointer<UInt32>.allocate(capacity: 1)
    private var thread: SystemThread?
    private let seed: UInt64

    /// Where the scribbled indirect tables live (inside the standard layout's buffer area).
    static let indirectTable = 0x30000
    static let ringSize = 256

    init(memory: FakeFrontendMemory, seed: UInt64 = UInt64.random(in: 1...UInt64.max)) {
        rings = [memory.ring(0), memory.ring(1)]
        memorySize = memory.size
        self.seed = seed
        stopFlag.initialize(to: 0)
    }

    deinit {
        stop()
        stopFlag.deallocate()
    }

    func start() {
        thread = try? SystemThread(name: "guest-scribbler") { [rings, memorySize, stopFlag, seed] in
            var random = HostileRandom(seed: seed)
            while vhost_shims_load_relaxed_u32(stopFlag) == 0 {
                for _ in 0..<64 { Self.scribbleOnce(rings, memorySize, &random) }
            }
        }
    }

    func stop() {
        vhost_shims_store_relaxed_u32(stopFlag, 1)
        thread?.join()
        thread = nil
    }

    // MARK: One rewrite

    private static func scribbleOnce(_ rings: [SplitGuestDriverRing], _ memorySize: UInt64, _ random: inout HostileRandom) {
        let ring = rings[random.below(2)]
        switch random.below(8) {
        case 0..<4: rewriteDescriptor(ring, memorySize, &random)
        case 4: rewriteIndirectEntry(ring, memorySize, &random)
        case 5, 6: rewriteAvailEntry(ring, &random)
        default: moveAvailIndex(ring, &random)
        }
    }

    private static func rewriteDescriptor(_ ring: SplitGuestDriverRing, _ memorySize: UInt64, _ random: inout HostileRandom) {
        let index = random.below(ringSize)
        ring.writeDescriptor(index, address: address(memorySize, &random), length: length(&random),
                             flags: flags(&random), next: next(after: index, &random))
    }

    /// An entry of the indirect table (the ring it was drawn for does not matter).
    private static func rewriteIndirectEntry(_ ring: SplitGuestDriverRing, _ memorySize: UInt64, _ random: inout HostileRandom) {
        let index = random.below(ringSize)
        ring.writeDescriptor(at: UInt64(indirectTable + index * 16), address: address(memorySize, &random), length: length(&random),
                             flags: flags(&random), next: next(after: index, &random))
    }

    private static func rewriteAvailEntry(_ ring: SplitGuestDriverRing, _ random: inout HostileRandom) {
        let slot = random.below(ringSize)
        let head = random.below(8) == 0 ? UInt16(truncatingIfNeeded: random.next()) : UInt16(random.below(ringSize))
        ring.writeAvailSlot(UInt16(slot), head: head)
    }

    /// Mostly a plausible step forward; sometimes a jump past the ring size, or backwards.
    private static func moveAvailIndex(_ ring: SplitGuestDriverRing, _ random: inout HostileRandom) {
        let current = ring.availIndex
        let value = random.below(16) == 0 ? UInt16(truncatingIfNeeded: random.next()) : current &+ UInt16(random.below(33))
        ring.setAvailIndex(value)
    }

    // MARK: Field values: plausible ones most of the time, so the walker gets deep

    private static func address(_ memorySize: UInt64, _ random: inout HostileRandom) -> UInt64 {
        switch random.below(8) {
        case 0..<5: UInt64(0x10000 + random.below(0x20000))  // the buffer area
        case 5: UInt64(indirectTable)
        case 6: memorySize - 8  // runs off the end of the region
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
