import Dataplane
import VhostUser

/// A `HandoverDocument` as JSON: u64 values (features, addresses, MACs, times) as hex strings
/// (a JSON integer is an int64), fds as indices into the fds sent with it, null for none.
public enum HandoverDocumentEncoder {
    public static func encode(_ document: HandoverDocument) -> JSON {
        .object([
            "version": .integer(Int64(document.version)),
            "descriptor_count": .integer(Int64(document.descriptorCount)),
            "event_sequence": .integer(Int64(clamping: document.eventSequence)),
            "quiesced_at_ns": hex(document.quiescedAtNanoseconds),
            "api": .object(["unix": index(document.api.unix), "tcp": index(document.api.tcp), "metrics": index(document.api.metrics)]),
            "ports": .array(document.ports.map { port in
                .object(["spec": PortSpecEncoder.encode(port.spec), "device": port.device.map(encode) ?? .null])
            }),
            "pending_ports": .array(document.pendingPorts.map(PortSpecEncoder.encode)),
            "mac_table": .array(document.macTable.map {
                .object(["mac": hex($0.mac), "segment": .integer(Int64($0.segment)), "port": .string($0.port)])
            }),
        ])
    }

    static func encode(_ device: VhostUserDeviceExport) -> JSON {
        .object([
            "name": .string(device.name), "listener": index(device.listener),
            "session": device.session.map(encode) ?? .null,
            "sessions": .integer(Int64(clamping: device.sessions)), "refused_requests": .integer(Int64(clamping: device.refusedRequests)),
            "sessions_closed_on_error": .integer(Int64(clamping: device.sessionsClosedOnError)),
            "guest_faults": .integer(Int64(clamping: device.guestFaults)),
        ])
    }

    static func encode(_ session: VhostUserSessionExport) -> JSON {
        .object([
            "socket": .integer(Int64(session.socket)),
            "offered_features": hex(session.offeredFeatures),
            "negotiated_features": session.negotiatedFeatures.map(hex) ?? .null,
            "negotiated_protocol_features": session.negotiatedProtocolFeatures.map(hex) ?? .null,
            "status": .integer(Int64(session.status)),
            "mtu": session.mtu.map { .integer(Int64($0)) } ?? .null,
            "memory": .array(session.memoryRegions.map {
                .object(["gpa": hex($0.region.guestPhysicalAddress), "size": hex($0.region.size), "user_addr": hex($0.region.userspaceAddress),
                         "mmap_offset": hex($0.region.mmapOffset), "fd": .integer(Int64($0.descriptor))])
            }),
            "dirty_log": session.dirtyLog.map {
                .object(["fd": .integer(Int64($0.descriptor)), "size": hex($0.size), "offset": hex($0.offset)])
            } ?? .null,
            "vrings": .array(session.vrings.map(encode)),
        ])
    }

    static func encode(_ ring: VhostUserSessionExport.Vring) -> JSON {
        .object([
            "index": .integer(Int64(ring.index)),
            "size": ring.size.map { .integer(Int64($0)) } ?? .null,
            "addresses": ring.addresses.map {
                .object(["flags": .integer(Int64($0.flags)), "desc": hex($0.descriptor), "used": hex($0.used),
                         "avail": hex($0.avail), "log": hex($0.log)])
            } ?? .null,
            "position": ring.position.map {
                .object(["last_avail_index": .integer(Int64($0.lastAvailIndex)), "last_used_index": .integer(Int64($0.lastUsedIndex)),
                         "avail_wrap_counter": $0.availWrapCounter.map { .bool($0) } ?? .null,
                         "used_wrap_counter": $0.usedWrapCounter.map { .bool($0) } ?? .null])
            } ?? .null,
            "enabled": ring.enabled.map { .bool($0) } ?? .null,
            "started": .bool(ring.started),
            "kick": index(ring.kick), "call": index(ring.call), "err": index(ring.err),
        ])
    }

    private static func hex(_ value: UInt64) -> JSON { .string(PortSpecEncoder.hex(value)) }
    private static func index(_ value: Int?) -> JSON { value.map { .integer(Int64($0)) } ?? .null }
}
