import VhostSystem
import Virtio

/// A handed-over session (`VhostUserSessionExport`) turned back into the requests a front-end
/// sends to build it, in the order QEMU and DPDK send them: features, protocol features, the
/// memory table, the dirty log, the MTU, each ring (size, addresses, base, call, err, enable,
/// kick), LOG_ALL, the status. `VhostUserConnection(adopting:)` dispatches them like a
/// front-end's (the table's rules, each payload's decoding and validation, the handlers), so
/// a state document can make nothing a front-end could not, and the adopted session is the
/// one its handshake would have made: memory mapped under the fault guard, rings built by
/// `VirtqueueBuilder` from their positions when the queues are published.
struct VhostUserSessionReplay {
    let export: VhostUserSessionExport
    let vringCount: Int

    /// The messages, each with the fds it carries (taken from `descriptors`).
    func messages(taking descriptors: VhostUserHandoverDescriptors) throws(VhostUserProtocolError) -> [VhostUserMessage] {
        var messages: [VhostUserMessage] = []
        func add(_ request: VhostUserRequest, _ writer: LittleEndianWriter, _ fds: [FileDescriptor] = []) {
            let header = VhostUserHeader(request: request.rawValue, flags: VhostUserHeader.version, size: UInt32(writer.bytes.count))
            messages.append(VhostUserMessage(header: header, payload: writer.bytes, descriptors: fds))
        }
        func u64(_ value: UInt64) -> LittleEndianWriter {
            var writer = LittleEndianWriter()
            writer.u64(value)
            return writer
        }
        let logAll = VhostUserDevice.logAllFeature
        if let features = export.negotiatedFeatures { add(.setFeatures, u64(features & ~logAll)) }
        if let protocolFeatures = export.negotiatedProtocolFeatures { add(.setProtocolFeatures, u64(protocolFeatures)) }
        try addMemory(descriptors, add)
        if let log = export.dirtyLog {
            var writer = LittleEndianWriter()
            writer.u64(log.size)
            writer.u64(log.offset)
            add(.setLogBase, writer, [try descriptors.take(log.descriptor, for: "dirty log")])
        }
        if let mtu = export.mtu { add(.netSetMtu, u64(UInt64(max(0, mtu)))) }
        for ring in export.vrings {
            try addRing(ring, descriptors, add)
        }
        if let features = export.negotiatedFeatures, features & logAll != 0 { add(.setFeatures, u64(features)) }
        if export.status != 0 { add(.setStatus, u64(UInt64(export.status))) }
        return messages
    }

    private func addMemory(_ descriptors: VhostUserHandoverDescriptors,
                           _ add: (VhostUserRequest, LittleEndianWriter, [FileDescriptor]) -> Void) throws(VhostUserProtocolError) {
        let regions = export.memoryRegions
        guard !regions.isEmpty else { return }
        func write(_ entry: VhostUserSessionExport.MemoryRegion, _ writer: inout LittleEndianWriter) {
            let region = entry.region
            writer.u64(region.guestPhysicalAddress)
            writer.u64(region.size)
            writer.u64(region.userspaceAddress)
            writer.u64(region.mmapOffset)
        }
        var fds: [FileDescriptor] = []
        for (number, region) in regions.enumerated() {
            fds.append(try descriptors.take(region.descriptor, for: "memory region \(number)"))
        }
        if regions.count <= MemoryTable.maxRegions {
            var writer = LittleEndianWriter()
            writer.u32(UInt32(regions.count))
            writer.u32(0)
            for region in regions { write(region, &writer) }
            add(.setMemTable, writer, fds)
            return
        }
        // More than SET_MEM_TABLE holds: they came one by one (CONFIGURE_MEM_SLOTS).
        for (region, fd) in zip(regions, fds) {
            var writer = LittleEndianWriter()
            writer.u64(0)
            write(region, &writer)
            add(.addMemReg, writer, [fd])
        }
    }

    private func addRing(_ ring: VhostUserSessionExport.Vring, _ descriptors: VhostUserHandoverDescriptors,
                         _ add: (VhostUserRequest, LittleEndianWriter, [FileDescriptor]) -> Void) throws(VhostUserProtocolError) {
        guard (0..<vringCount).contains(ring.index) else {
            throw .handoverRefused("vring index \(ring.index) outside the port's \(vringCount) vrings")
        }
        let index = UInt32(ring.index)
        func state(_ value: UInt32) -> LittleEndianWriter {
            var writer = LittleEndianWriter()
            writer.u32(index)
            writer.u32(value)
            return writer
        }
        func file(_ fdIndex: Int?, _ what: String) throws(VhostUserProtocolError) -> (LittleEndianWriter, [FileDescriptor]) {
            var writer = LittleEndianWriter()
            guard let fdIndex else {
                writer.u64(UInt64(index) | VringFile.noFdFlag)
                return (writer, [])
            }
            writer.u64(UInt64(index))
            return (writer, [try descriptors.take(fdIndex, for: "vring \(index) \(what)")])
        }
        if let size = ring.size {
            guard (1...VhostUserLimits.maxRingSize).contains(size) else { throw .handoverRefused("vring \(index) size \(size)") }
            add(.setVringNum, state(UInt32(size)), [])
        }
        if let addresses = ring.addresses {
            var writer = LittleEndianWriter()
            writer.u32(index)
            writer.u32(addresses.flags)
            writer.u64(addresses.descriptor)
            writer.u64(addresses.used)
            writer.u64(addresses.avail)
            writer.u64(addresses.log)
            add(.setVringAddr, writer, [])
        }
        if let position = ring.position { add(.setVringBase, state(UInt32(try base(position, ring))), []) }
        if let call = ring.call {
            let (writer, fds) = try file(call, "call")
            add(.setVringCall, writer, fds)
        }
        if let err = ring.err {
            let (writer, fds) = try file(err, "err")
            add(.setVringErr, writer, fds)
        }
        if let enabled = ring.enabled { add(.setVringEnable, state(enabled ? 1 : 0), []) }
        if ring.started {
            let (writer, fds) = try file(ring.kick, "kick")
            add(.setVringKick, writer, fds)
        } else if ring.kick != nil {
            throw .handoverRefused("vring \(index) has a kick fd but is not started")
        }
    }

    private var packed: Bool { (export.negotiatedFeatures ?? 0) & VhostUserDevice.ringPackedFeature != 0 }

    /// SET_VRING_BASE's value: the split index, or the packed index with its wrap counter in
    /// bit 15. The wrap counters are there exactly when the layout is packed.
    private func base(_ position: VhostUserSessionExport.RingPosition, _ ring: VhostUserSessionExport.Vring) throws(VhostUserProtocolError) -> UInt16 {
        guard packed else {
            guard position.availWrapCounter == nil, position.usedWrapCounter == nil else {
                throw .handoverRefused("vring \(ring.index): wrap counters on a split ring")
            }
            return position.lastAvailIndex
        }
        guard let availWrap = position.availWrapCounter, position.usedWrapCounter != nil else {
            throw .handoverRefused("vring \(ring.index): packed ring without its wrap counters")
        }
        return PackedVirtqueue.encodeBase(index: position.lastAvailIndex, wrap: availWrap)
    }

    /// The used position where it differs from the avail one (consumed without a used entry:
    /// an invalid head), in `VirtqueuePosition`'s encoding; checked like SET_VRING_BASE's.
    func usedBase(of ring: VhostUserSessionExport.Vring) throws(VhostUserProtocolError) -> UInt16? {
        guard let position = ring.position else { return nil }
        guard packed else { return position.lastUsedIndex == position.lastAvailIndex ? nil : position.lastUsedIndex }
        guard let size = ring.size, Int(position.lastUsedIndex) < size, let usedWrap = position.usedWrapCounter else {
            throw .handoverRefused("vring \(ring.index): packed used index \(position.lastUsedIndex) outside the ring")
        }
        let encoded = PackedVirtqueue.encodeBase(index: position.lastUsedIndex, wrap: usedWrap)
        return encoded == PackedVirtqueue.encodeBase(index: position.lastAvailIndex, wrap: position.availWrapCounter ?? true) ? nil : encoded
    }
}
