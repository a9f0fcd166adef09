import ArgumentParser
import Dataplane
import ManagementPlane
import VhostSystem

/// The start-up configuration file: {"ports": [port, ...]}, ports as in POST /v1/ports.
enum ConfigFile {
    static func load(path: String) throws -> [PortSpec] {
        guard let bytes = try FileSystem.readFile(path, maxBytes: 4 << 20) else {
            throw ValidationError("config file \(path) does not exist")
        }
        let json: JSON
        do { json = try JSON.parse(bytes) } catch { throw ValidationError("\(path): \(error.message)") }
        guard let object = json.objectValue else { throw ValidationError("\(path): the top level must be an object") }
        if let unknown = object.keys.sorted().first(where: { $0 != "ports" }) {
            throw ValidationError("\(path): unknown field \"\(unknown)\"")
        }
        guard let entries = (object["ports"] ?? .array([])).arrayValue else { throw ValidationError("\(path): ports must be a list") }
        var specs: [PortSpec] = []
        for (index, entry) in entries.enumerated() {
            do { specs.append(try PortSpecDecoder.decode(entry)) } catch {
                throw ValidationError("\(path): ports[\(index)]: \(error.message)")
            }
        }
        return specs
    }
}
