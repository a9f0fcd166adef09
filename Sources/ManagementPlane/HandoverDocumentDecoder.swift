import Dataplane
import PortService
import VhostUser
import Virtio

/// Reads a `HandoverDocument` from JSON, refusing wrong types, values out of range and fd
/// indices outside the fds received, with a message naming the field. The document comes
/// from another process (a peer, not to be trusted): what it says about sessions is checked
/// again when they are adopted, request by request (`VhostUserConnection.adopt`).
public enum HandoverDocumentDecoder {
    /// The versions this binary reads: its own and the one before (none before 1).
    public static let acceptedVersions = max(1, HandoverDocument.currentVersion - 1)...HandoverDocument.currentVersion

    public typealias DecodingError = PortSpecDecoder.DecodingError

    public static func decode(_ json: JSON) throws(DecodingError) -> HandoverDocument {
        let top = try Fields(json, "document")
        let version = try top.int("version", 0...Int64.max)
        guard acceptedVersions.contains(version) else {
            throw DecodingError("version \(version) is not one this binary reads (\(acceptedVersions))")
        }
        let descriptorCount = try top.int("descriptor_count", 0...65536)
        let api = try Fields(try top.required("api"), "api", descriptors: descriptorCount)
        var ports: [PortHandover.Port] = []
        for (number, item) in try top.array("ports").enumerated() {
            let fields = try Fields(item, "ports[\(number)]", descriptors: descriptorCount)
            let spec: PortSpec
            do { spec = try PortSpecDecoder.decode(try fields.required("spec")) } catch {
                throw DecodingError("ports[\(number)].spec: \(error.message)")
            }
            let device = try fields.optional("device").map { json throws(DecodingError) in
                try decodeDevice(Fields(json, "ports[\(number)].device", descriptors: descriptorCount))
            }
            if let device, device.name != spec.name {
                throw DecodingError("ports[\(number)].device is named \(device.name), its spec \(spec.name)")
            }
            ports.append(PortHandover.Port(spec: spec, device: device))
        }
        var pendingPorts: [PortSpec] = []
        for (number, item) in (top.optional("pending_ports") == nil ? [] : try top.array("pending_ports")).enumerated() {
            do { pendingPorts.append(try PortSpecDecoder.decode(item)) } catch {
                throw DecodingError("pending_ports[\(number)]: \(error.message)")
            }
        }
        var macTable: [PortHandover.MacEntry] = []
        for (number, item) in try top.array("mac_table").enumerated() {
            let fields = try Fields(item, "mac_table[\(number)]")
            let mac = try fields.hex("mac")
            guard mac >> 48 == 0 else { throw DecodingError("mac_table[\(number)].mac is not a 48-bit address") }
            macTable.append(PortHandover.MacEntry(mac: mac, segment: try fields.int("segment", 0...4094), port: try fields.string("port")))
        }
        return HandoverDocument(
            version: version, descriptorCount: descriptorCount, eventSequence: UInt64(try top.int("event_sequence", 0...Int64.max)),
            quiescedAtNanoseconds: try top.hex("quiesced_at_ns"),
            api: HandoverDocument.APIListeners(unix: try api.index("unix"), tcp: try api.index("tcp"), metrics: try api.index("metrics")),
            ports: ports, pendingPorts: pendingPorts, macTable: macTable)
    }

    static func decodeDevice(_ fields: Fields) throws(DecodingError) -> VhostUserDeviceExport {
        let session = try fields.optional("session").map { json throws(DecodingError) in
            try decodeSession(Fields(json, fields.context + ".session", descriptors: fields.descriptors))
        }
        return VhostUserDeviceExport(
            name: try fields.string("name"), listener: try fields.index("listener"), session: session,
            sessions: try fields.count("sessions"), refusedRequests: try fields.count("refused_requests"),
            sessionsClosedOnError: try fields.count("sessions_closed_on_error"), guestFaults: try fields.count("guest_faults"))
    }

    static func decodeSession(_ fields: Fields) throws(DecodingError) -> VhostUserSessionExport {
        guard let socket = try fields.index("socket") else { throw DecodingError("\(fields.context).socket is required") }
        var regions: [VhostUserSessionExport.MemoryRegion] = []
        for (number, item) in try fields.array("memory").enumerated() {
            let region = try Fields(item, "\(fields.context).memory[\(number)]", descriptors: fields.descriptors)
            guard let fd = try region.index("fd") else { throw DecodingError("\(region.context).fd is required") }
            let described = GuestMemoryRegionDescriptor(guestPhysicalAddress: try region.hex("gpa"), size: try region.hex("size"),
                                                        userspaceAddress: try region.hex("user_addr"), mmapOffset: try region.hex("mmap_offset"))
            regions.append(.init(region: described, descriptor: fd))
        }
        let log = try fields.optional("dirty_log").map { json throws(DecodingError) -> VhostUserSessionExport.DirtyLog in
            let log = try Fields(json, fields.context + ".dirty_log", descriptors: fields.descriptors)
            guard let fd = try log.index("fd") else { throw DecodingError("\(log.context).fd is required") }
            return .init(descriptor: fd, size: try log.hex("size"), offset: try log.hex("offset"))
        }
        var rings: [VhostUserSessionExport.Vring] = []
        for (number, item) in try fields.array("vrings").enumerated() {
            rings.append(try decodeRing(Fields(item, "\(fields.context).vrings[\(number)]", descriptors: fields.descriptors)))
        }
        return VhostUserSessionExport(
            socket: socket, offeredFeatures: try fields.hex("offered_features"),
            negotiatedFeatures: try fields.optional("negotiated_features").map { _ throws(DecodingError) in try fields.hex("negotiated_features") },
            negotiatedProtocolFeatures: try fields.optional("negotiated_protocol_features").map { _ throws(DecodingError) in
                try fields.hex("negotiated_protocol_features")
            },
            status: UInt8(try fields.int("status", 0...255)),
            mtu: try fields.optional("mtu").map { _ throws(DecodingError) in (try fields.int("mtu", 0...65535)) },
            memoryRegions: regions, dirtyLog: log, vrings: rings)
    }

    static func decodeRing(_ fields: Fields) throws(DecodingError) -> VhostUserSessionExport.Vring {
        let addresses = try fields.optional("addresses").map { json throws(DecodingError) -> VringAddresses in
            let area = try Fields(json, fields.context + ".addresses")
            return .init(flags: UInt32(try area.int("flags", 0...Int64(UInt32.max))), descriptor: try area.hex("desc"),
                         used: try area.hex("used"), avail: try area.hex("avail"), log: try area.hex("log"))
        }
        let position = try fields.optional("position").map { json throws(DecodingError) -> VhostUserSessionExport.RingPosition in
            let place = try Fields(json, fields.context + ".position")
            return .init(lastAvailIndex: UInt16(try place.int("last_avail_index", 0...0xffff)),
                         lastUsedIndex: UInt16(try place.int("last_used_index", 0...0xffff)),
                         availWrapCounter: try place.optionalBool("avail_wrap_counter"),
                         usedWrapCounter: try place.optionalBool("used_wrap_counter"))
        }
        return VhostUserSessionExport.Vring(
            index: (try fields.int("index", 0...Int64(2 * VhostUserDevice.maxQueuePairsLimit - 1))),
            size: try fields.optional("size").map { _ throws(DecodingError) in (try fields.int("size", 1...Int64(VhostUserLimits.maxRingSize))) },
            addresses: addresses, position: position, enabled: try fields.optionalBool("enabled"),
            started: try fields.bool("started"), kick: try fields.index("kick"), call: try fields.index("call"), err: try fields.index("err"))
    }

    /// One JSON object's fields, read with the checks every field needs.
    struct Fields {
        let object: [String: JSON]
        let context: String
        /// The fds received: an index must be below this.
        let descriptors: Int

        init(_ json: JSON, _ context: String, descriptors: Int = 0) throws(DecodingError) {
            guard let object = json.objectValue else { throw DecodingError("\(context) must be an object") }
            self.object = object
            self.context = context
            self.descriptors = descriptors
        }

        func required(_ key: String) throws(DecodingError) -> JSON {
            guard let value = object[key] else { throw DecodingError("\(context).\(key) is required") }
            return value
        }

        func optional(_ key: String) -> JSON? {
            guard let value = object[key], value != .null else { return nil }
            return value
        }

        func int(_ key: String, _ range: ClosedRange<Int64>) throws(DecodingError) -> Int {
            guard let value = try required(key).integerValue else { throw DecodingError("\(context).\(key) must be an integer") }
            guard range.contains(value) else { throw DecodingError("\(context).\(key) \(value) outside \(range)") }
            return Int(value)
        }

        func array(_ key: String) throws(DecodingError) -> [JSON] {
            guard let items = try required(key).arrayValue else { throw DecodingError("\(context).\(key) must be a list") }
            return items
        }

        func count(_ key: String) throws(DecodingError) -> UInt64 { UInt64(try int(key, 0...Int64.max)) }

        func hex(_ key: String) throws(DecodingError) -> UInt64 {
            guard let text = try required(key).stringValue, let value = PortSpecDecoder.parseMask(text) else {
                throw DecodingError("\(context).\(key) must be a hex string such as 0x1f")
            }
            return value
        }

        func string(_ key: String) throws(DecodingError) -> String {
            guard let text = try required(key).stringValue else { throw DecodingError("\(context).\(key) must be a string") }
            return text
        }

        func bool(_ key: String) throws(DecodingError) -> Bool {
            guard let value = try required(key).boolValue else { throw DecodingError("\(context).\(key) must be true or false") }
            return value
        }

        func optionalBool(_ key: String) throws(DecodingError) -> Bool? {
            guard optional(key) != nil else { return nil }
            return try bool(key)
        }

        /// An fd index, or nil (none, NOFD).
        func index(_ key: String) throws(DecodingError) -> Int? {
            guard optional(key) != nil else { return nil }
            guard descriptors > 0 else { throw DecodingError("\(context).\(key): no fds were received") }
            return try int(key, 0...Int64(descriptors - 1))
        }
    }
}
