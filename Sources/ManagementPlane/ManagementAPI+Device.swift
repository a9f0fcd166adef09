import PortService
import VhostUser

/// /v1/ports/{name}/device.
extension ManagementAPI {
    func getDevice(_ name: String) throws(APIError) -> HTTPResponse {
        let info: VhostUserDeviceInfo
        do { info = try service.device(port: name) } catch { throw APIError(error) }
        return .json([
            "name": .string(info.name),
            "socket": .string(info.socketPath),
            "mode": .string(info.mode.rawValue),
            "state": .string(info.state.rawValue),
            "features": [
                "offered": Self.featureSet(info.offeredFeatures),
                "negotiated": info.negotiatedFeatures.map(Self.featureSet) ?? .null,
            ],
            "protocol_features": [
                "offered": Self.protocolFeatureSet(info.offeredProtocolFeatures),
                "negotiated": info.negotiatedProtocolFeatures.map(Self.protocolFeatureSet) ?? .null,
            ],
            "mtu": info.mtu.map { .integer(Int64($0)) } ?? .null,
            "status": .integer(Int64(info.status)),
            "max_queue_pairs": .integer(Int64(info.maxQueuePairs)),
            "queue_pairs": .integer(Int64(info.activeQueuePairs)),
            "memory_regions": .array(info.memoryRegions.map { region in
                [
                    "guest_phys_addr": .string(PortSpecEncoder.hex(region.guestPhysicalAddress)),
                    "size": Self.count(region.size),
                    "userspace_addr": .string(PortSpecEncoder.hex(region.userspaceAddress)),
                    "mmap_offset": .string(PortSpecEncoder.hex(region.mmapOffset)),
                ]
            }),
            "dirty_logging": .bool(info.dirtyLogging),
            "sessions": Self.count(info.sessions),
            "refused_requests": Self.count(info.refusedRequests),
            "sessions_closed_on_error": Self.count(info.sessionsClosedOnError),
            "guest_faults": Self.count(info.guestFaults),
            "last_error": info.lastError.map { .string($0) } ?? .null,
        ])
    }
}
