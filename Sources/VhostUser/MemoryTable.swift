import VhostSystem
import Virtio

/// SET_MEM_TABLE (`VhostUserMemory`): u32 region count, u32 padding, then up to 8 regions,
/// one fd per region in the same order.
struct MemoryTable: VhostUserPayload {
    static let headerSize = 8
    static let maxRegions = 8
    static let size = VhostUserMessageRule.Payload.variable(headerSize...(headerSize + maxRegions * MemoryRegion.size))

    /// The regions the payload holds (`validate` checks it holds every declared one).
    let regions: [MemoryRegion]
    private let declaredCount: Int
    private let payloadSize: Int

    /// The count must match the fds before anything else happens.
    init(decoding decoder: inout VhostUserPayloadDecoder) throws(VhostUserProtocolError) {
        let count = Int(try decoder.u32())
        _ = try decoder.u32()  // padding
        let request = decoder.request
        if count > Self.maxRegions { throw .memoryTableRefused(request, "\(count) regions, at most \(Self.maxRegions)") }
        if count != decoder.descriptors.count {
            throw .descriptorCountMismatch(request, descriptors: decoder.descriptors.count, regions: count)
        }
        var regions: [MemoryRegion] = []
        for descriptor in decoder.descriptors where decoder.remaining >= MemoryRegion.size {
            regions.append(try MemoryRegion(decoding: &decoder, fd: descriptor))
        }
        self.regions = regions
        declaredCount = count
        payloadSize = decoder.payloadSize
    }

    func validate(for request: VhostUserRequest) throws(VhostUserProtocolError) {
        guard declaredCount > 0 else { throw .memoryTableRefused(request, "no regions") }
        let needed = Self.headerSize + declaredCount * MemoryRegion.size
        guard payloadSize >= needed else {
            throw .wrongPayloadSize(request, size: payloadSize, expected: "at least \(needed) for \(declaredCount) regions")
        }
        for region in regions { try region.validate(for: request) }
    }
}

/// One `VhostUserMemoryRegion`: guest-physical address, size, front-end virtual address and
/// offset in the fd, each a u64; with the fd it is mapped from (none for REM_MEM_REG).
struct MemoryRegion {
    static let size = 32
    let descriptor: GuestMemoryRegionDescriptor
    let fd: FileDescriptor?

    init(decoding decoder: inout VhostUserPayloadDecoder, fd: FileDescriptor?) throws(VhostUserProtocolError) {
        descriptor = GuestMemoryRegionDescriptor(guestPhysicalAddress: try decoder.u64(), size: try decoder.u64(),
                                                 userspaceAddress: try decoder.u64(), mmapOffset: try decoder.u64())
        self.fd = fd
    }

    /// The checks that need no mapping: non-empty, nothing wraps around 2^64, and the backing
    /// file is a mappable file at least offset + size long (touching past its end is SIGBUS).
    func validate(for request: VhostUserRequest) throws(VhostUserProtocolError) {
        if let problem = problem { throw .memoryTableRefused(request, problem) }
    }

    private var problem: String? {
        let region = descriptor
        guard region.size > 0 else { return "region size 0" }
        let (_, gpaWraps) = region.guestPhysicalAddress.addingReportingOverflow(region.size)
        let (_, uvaWraps) = region.userspaceAddress.addingReportingOverflow(region.size)
        let (fileEnd, offsetWraps) = region.mmapOffset.addingReportingOverflow(region.size)
        guard !gpaWraps, !uvaWraps, !offsetWraps else { return "region \(region.summary) wraps around 2^64" }
        guard let fd else { return nil }
        guard (try? fd.isMappableFile()) == true else { return "region \(region.summary): fd is not a mappable file" }
        guard let fileSize = try? fd.fileSize() else { return "region \(region.summary): fstat failed" }
        guard fileSize >= fileEnd else { return "region \(region.summary): backing file has \(fileSize) bytes, needs \(fileEnd)" }
        return nil
    }
}

extension GuestMemoryRegionDescriptor {
    /// For refusals and logs.
    var summary: String {
        "gpa 0x\(String(guestPhysicalAddress, radix: 16)) size 0x\(String(size, radix: 16)) uva 0x\(String(userspaceAddress, radix: 16)) offset 0x\(String(mmapOffset, radix: 16))"
    }
}
