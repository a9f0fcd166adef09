import Dataplane
import Logging
import PortService
import Synchronization
import VhostSystem

/// The ports and their settings in `<state-dir>/ports.json`, written atomically (temp file,
/// fsync, rename) after every change (an observer of `PortService`, subscribed once start-up
/// has restored the saved ports and created the configured ones), read once at start-up. A file that cannot be read
/// back is never dropped silently: it is logged and renamed aside with a timestamp suffix.
public final class PortStateStore: Sendable {
    public static let fileName = "ports.json"
    public static let formatVersion: Int64 = 1

    public let directory: String
    public var path: String { directory + "/" + Self.fileName }
    private let logger: Logger
    private let writing = Mutex<Void>(())

    public init(directory: String, logger: Logger) {
        var trimmed = directory
        while trimmed.count > 1 && trimmed.hasSuffix("/") { trimmed.removeLast() }
        self.directory = trimmed
        self.logger = logger
    }

    /// What start-up found.
    public struct Loaded: Sendable {
        public var specs: [PortSpec] = []
        /// Entries or files that could not be used, with why.
        public var problems: [String] = []
        /// Where an unreadable file was moved.
        public var movedAside: String?
    }

    /// Writes `specs` (each with its offered mask resolved, as `PortService` keeps them).
    public func save(_ specs: [PortSpec]) throws(SystemError) {
        let document: JSON = [
            "version": .integer(Self.formatVersion),
            "ports": .array(specs.map(PortSpecEncoder.encode)),
        ]
        try writing.withLock { _ throws(SystemError) in
            try FileSystem.makeDirectoryTree(directory, permissions: 0o700)
            try FileSystem.writeFileAtomically(path, Array((document.rendered(pretty: true) + "\n").utf8), permissions: 0o600)
        }
    }

    /// Saves, logging instead of failing: the change already happened.
    public func saveLogging(_ specs: [PortSpec]) {
        do { try save(specs) } catch {
            logger.error("cannot save the port state", metadata: ["path": "\(path)", "error": "\(error)"])
        }
    }

    public func load() -> Loaded {
        var loaded = Loaded()
        let bytes: [UInt8]?
        do { bytes = try FileSystem.readFile(path, maxBytes: 16 << 20) } catch {
            loaded.problems.append("cannot read \(path): \(error)")
            loaded.movedAside = moveAside()
            return loaded
        }
        guard let bytes else { return loaded }
        let entries: [JSON]
        do throws(JSON.ParseError) {
            let document = try JSON.parse(bytes)
            guard let object = document.objectValue else { throw JSON.ParseError(message: "the top level is not an object") }
            guard let version = object["version"]?.integerValue, version == Self.formatVersion else {
                throw JSON.ParseError(message: "unknown or missing format version")
            }
            guard let list = object["ports"]?.arrayValue else { throw JSON.ParseError(message: "\"ports\" is not a list") }
            entries = list
        } catch {
            loaded.problems.append("\(path) is corrupt: \(error.message)")
            loaded.movedAside = moveAside()
            return loaded
        }
        var names = Set<String>()
        for (index, entry) in entries.enumerated() {
            do {
                let spec = try PortSpecDecoder.decode(entry)
                guard names.insert(spec.name).inserted else {
                    loaded.problems.append("\(path): ports[\(index)]: duplicate port \(spec.name)")
                    continue
                }
                loaded.specs.append(spec)
            } catch {
                loaded.problems.append("\(path): ports[\(index)]: \(error.message)")
            }
        }
        if !loaded.problems.isEmpty {
            // Keep the original for a human; the good entries are restored and re-saved.
            loaded.movedAside = moveAside()
        }
        return loaded
    }

    /// Renames the state file to `ports.json.corrupt-<UTC timestamp>`; returns the new path.
    private func moveAside() -> String? {
        let stamp = Timestamp.rfc3339(milliseconds: MonotonicClock.wallMilliseconds())
            .replacingColons()
        let target = path + ".corrupt-" + stamp
        do {
            try FileSystem.rename(from: path, to: target)
            return target
        } catch {
            logger.error("cannot move the corrupt state file aside", metadata: ["path": "\(path)", "error": "\(error)"])
            return nil
        }
    }
}

extension PortStateStore: PortChangeObserver {
    public func portsChanged(_ specs: [PortSpec]) { saveLogging(specs) }
}

extension String {
    /// "2024-05-01T10:11:12.345Z" -> "20240501T101112.345Z": safe in file names.
    func replacingColons() -> String { String(filter { $0 != ":" && $0 != "-" }) }
}
