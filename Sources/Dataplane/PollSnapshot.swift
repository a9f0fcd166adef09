import Synchronization
import CVhostShims
import Virtio

/// One receive queue a poll thread serves: a guest's transmit ring or a kernel port's
/// receive ring (nil only for the frames the switch injects itself).
struct PolledQueue {
    let driver: PortDriver?
    let portID: Int
    /// What wakes the thread when it sleeps: the kick eventfd or the packet socket (-1: none).
    let wakeDescriptor: Int32
    /// Longest frame (without virtio-net header) the port accepts: MTU + 18 (header, VLAN tag).
    let maxFrameLength: Int
}

/// Where one thread sends frames for one port: one of the port's guest receive rings, or
/// a kernel port's transmit ring (nil: the port has none ready).
struct TransmitTarget {
    var driver: PortDriver?
    /// Set when more threads than rings share this ring; nil when this thread owns it.
    var lock: Unmanaged<TransmitLock>?
    var isPresent: Bool
    /// The GUEST_* offloads this destination takes as they are (negotiated by its guest, or
    /// what the kernel port's vnet headers carry); the forwarder resolves the others.
    var acceptedOffloads: UInt64 = 0
    /// A guest with several receive rings: frames are steered by flow over
    /// `PollSnapshot.rings[firstRing ..< firstRing + ringCount]` (`TransmitSteering`);
    /// `driver` is the first of them. 1: one ring, `driver` alone.
    var firstRing = 0
    var ringCount = 1

    static let absent = TransmitTarget(driver: nil, lock: nil, isPresent: false)
}

/// A spin lock for a guest receive ring shared by several poll threads. Held for one
/// burst's enqueue, never across anything that blocks.
final class TransmitLock: Sendable {
    private let held = Atomic<Bool>(false)

    @inline(__always)
    func lock() {
        while !held.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged {
            vhost_shims_cpu_relax()
        }
    }

    @inline(__always)
    func unlock() { held.store(false, ordering: .releasing) }
}

/// What one poll thread works on: immutable once published. Reconfiguration builds a new
/// snapshot, publishes it, waits for every thread to pass a quiescent point, then frees
/// the old one (read-copy-update), so a poll thread never touches a released queue.
final class PollSnapshot {
    // Unsafe: fixed-size tables allocated in init and freed in deinit.
    let queues: UnsafeMutableBufferPointer<PolledQueue>
    let targets: UnsafeMutableBufferPointer<TransmitTarget>
    /// The receive rings of every multiqueue guest, each port's in one run (`TransmitTarget.firstRing`).
    let rings: UnsafeMutableBufferPointer<SteeredRing>
    /// The ports present, in id order (the flood list).
    let presentPorts: UnsafeMutableBufferPointer<Int>
    /// Each port's segment, port-security and limit rules, by port id (`rules(of:)`).
    private let portRules: UnsafeMutableBufferPointer<PortRules>
    let rulesTable: PortRulesTable
    private let owners: [AnyObject]

    convenience init(queues: [PolledQueue], targets: [TransmitTarget], rings: [SteeredRing] = [], presentPorts: [Int],
                     rules: PortRulesTable = PortRulesTable([]), owners: [AnyObject]) {
        self.init(queues: Self.table(queues), targets: Self.table(targets), rings: Self.table(rings),
                  presentPorts: Self.table(presentPorts), rules: rules, owners: owners)
    }

    /// Takes the tables as they are; they are freed with the snapshot.
    private init(queues: UnsafeMutableBufferPointer<PolledQueue>, targets: UnsafeMutableBufferPointer<TransmitTarget>,
                 rings: UnsafeMutableBufferPointer<SteeredRing>, presentPorts: UnsafeMutableBufferPointer<Int>,
                 rules: PortRulesTable, owners: [AnyObject]) {
        self.queues = queues
        self.targets = targets
        self.rings = rings
        self.presentPorts = presentPorts
        rulesTable = rules
        portRules = rules.rules
        self.owners = owners
    }

    /// A table of its own holding `elements` (an array, or another snapshot's table).
    private static func table<C: Collection>(_ elements: C) -> UnsafeMutableBufferPointer<C.Element> {
        let table = UnsafeMutableBufferPointer<C.Element>.allocate(capacity: elements.count)
        _ = table.initialize(from: elements)
        return table
    }

    /// This snapshot with port `id` present (its transmit target and rules from `entry`) or
    /// absent (nil), every other port's entries copied as they are: the receive queues and
    /// the owners stay the same, so `entry` may name no queue, ring or socket (a port with
    /// none, which no thread polls). The tables end at the highest present id, as a snapshot
    /// built from scratch does.
    func replacingPort(_ id: Int, with entry: (target: TransmitTarget, rules: PortRulesTable.Entry)?) -> PollSnapshot {
        // Built straight into the new tables (no intermediate arrays): with a thousand ports
        // the copies and allocations were most of what grew with the port count per call.
        let at = presentPorts.partitioningIndex(where: { $0 >= id })
        let listed = at < presentPorts.count && presentPorts[at] == id
        let adding = entry != nil && !listed, removing = entry == nil && listed
        let present = UnsafeMutableBufferPointer<Int>.allocate(capacity: presentPorts.count + (adding ? 1 : 0) - (removing ? 1 : 0))
        // Unsafe: each copy stays inside both tables (sizes computed above; Int is trivial).
        _ = present.initialize(from: presentPorts[..<at])
        if adding { present[at] = id }
        let tail = removing ? at + 1 : at
        _ = UnsafeMutableBufferPointer(rebasing: present[(at + (adding ? 1 : 0))...]).initialize(from: presentPorts[tail...])
        let count = (present.last ?? -1) + 1
        let targets = UnsafeMutableBufferPointer<TransmitTarget>.allocate(capacity: count)
        let kept = min(count, self.targets.count)
        // Unsafe: kept <= both tables' sizes; TransmitTarget is trivial (unmanaged references).
        _ = targets.initialize(from: self.targets[..<kept])
        UnsafeMutableBufferPointer(rebasing: targets[kept...]).initialize(repeating: .absent)
        if id < count { targets[id] = entry?.target ?? .absent }
        return PollSnapshot(queues: Self.table(queues), targets: targets, rings: Self.table(rings), presentPorts: present,
                            rules: rulesTable.replacing(port: id, with: entry?.rules, count: count), owners: owners)
    }

    /// The rules of `port`; the default policy's for an id the snapshot does not know.
    @inline(__always)
    func rules(of port: Int) -> PortRules {
        // Unsafe: port is checked against the table's size.
        port >= 0 && port < portRules.count ? portRules[port] : .plain
    }

    deinit {
        queues.deallocate()
        targets.deallocate()
        rings.deallocate()
        presentPorts.deallocate()
    }

}

extension RandomAccessCollection where Element == Int, Index == Int {
    /// The index of the first element for which `belongs` holds, in an array where it holds
    /// for a suffix (binary search).
    func partitioningIndex(where belongs: (Int) -> Bool) -> Int {
        var low = startIndex, high = endIndex
        while low < high {
            let middle = (low + high) / 2
            if belongs(self[middle]) { high = middle } else { low = middle + 1 }
        }
        return low
    }
}
