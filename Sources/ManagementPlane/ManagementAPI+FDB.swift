import Dataplane
import PortService

/// /v1/fdb and /v1/fdb/{mac}.
extension ManagementAPI {
    func getFDB() throws(APIError) -> HTTPResponse {
        let fdb = service.forwardingDatabase
        return .json([
            "capacity": .integer(Int64(fdb.capacity)),
            "aging_seconds": .integer(Int64(fdb.agingSeconds)),
            "entries": .array(fdb.entries.map { entry in
                [
                    "mac": .string(MacAddress.format(entry.mac)),
                    "vlan": entry.vlan.map { .integer(Int64($0)) } ?? .null,
                    "port": entry.portName.map { .string($0) } ?? .null,
                    "port_id": .integer(Int64(entry.portID)),
                    "age_seconds": .integer(Int64(entry.ageSeconds)),
                ]
            }),
        ])
    }

    func flushFDB() throws(APIError) -> HTTPResponse {
        .json(["removed": .integer(Int64(service.flushForwardingDatabase()))])
    }

    func deleteFDBEntry(_ text: String) throws(APIError) -> HTTPResponse {
        guard let mac = MacAddress.parse(text) else {
            throw APIError(.badRequest, .invalidMac, "\"\(RouterText.printable(text))\" is not a MAC address like 02:00:00:00:00:01")
        }
        guard service.removeForwardingEntry(mac) else {
            throw APIError(.notFound, .macNotFound, "\(MacAddress.format(mac)) is not in the forwarding database")
        }
        return .noContent()
    }
}
