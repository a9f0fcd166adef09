import VhostSystem

/// SET_LOG_BASE (`VhostUserLog`): the dirty-page bitmap's size and its offset in the fd
/// that comes with it, one bit per 4 KiB guest page (vhost-user.rst "Migration"). Whether
/// it covers guest memory is the handler's check (it needs the memory table).
struct LogBase: VhostUserPayload {
    static let size = VhostUserMessageRule.Payload.exact(16)
    let mmapSize: UInt64
    let mmapOffset: UInt64
    let fd: FileDescriptor

    init(decoding decoder: inout VhostUserPayloadDecoder) throws(VhostUserProtocolError) {
        mmapSize = try decoder.u64()
        mmapOffset = try decoder.u64()
        // The table's rule for SET_LOG_BASE is exactly one fd, checked before decoding.
        guard let fd = decoder.descriptors.first else { throw .missingDescriptor(decoder.request) }
        self.fd = fd
    }

    /// Offset + size inside 2^64, a size from 1 byte up to `VhostUserLimits.maxDirtyLogSize`,
    /// and a mappable file at least offset + size long.
    func validate(for request: VhostUserRequest) throws(VhostUserProtocolError) {
        let (end, overflow) = mmapOffset.addingReportingOverflow(mmapSize)
        guard !overflow else {
            throw .dirtyLogRefused("offset 0x\(String(mmapOffset, radix: 16)) + size 0x\(String(mmapSize, radix: 16)) overflows")
        }
        guard mmapSize > 0, mmapSize <= VhostUserLimits.maxDirtyLogSize else {
            throw .dirtyLogRefused("size \(mmapSize) outside 1...\(VhostUserLimits.maxDirtyLogSize)")
        }
        guard (try? fd.isMappableFile()) == true else { throw .dirtyLogRefused("fd is not a mappable file") }
        guard let fileSize = try? fd.fileSize(), fileSize >= end else { throw .dirtyLogRefused("backing file shorter than offset + size") }
    }
}
