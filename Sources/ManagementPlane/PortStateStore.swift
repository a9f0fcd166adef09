import Dataplane
import Logging
import PortService
import Synchronization
import VhostSystem

/// The ports and their settings, in `<state-dir>`: a snapshot `ports.json` (written
/// atomically: temp file, fsync, rename) and a journal `ports.journal` of the changes since,
/// one JSON object per line, each appended and fdatasync'd before the API replies. A change
/// costs one small append whatever the number of ports (1,000 creates and deletes take
/// seconds, not minutes, with a rewrite of every port per change). Past
/// `compactionRecords` lines (4,096) the snapshot is rewritten and the journal emptied. An observer
/// of `PortService`, subscribed once start-up has restored the saved ports. A file that
/// cannot be read back is never dropped silently: it is logged and renamed aside with a
/// timestamp suffix.
///
/// The store keeps its own list of saved specs: a saved port that could not be restored
/// stays saved until it is deleted.
public final class PortStateStore: Sendable {
    public static let fileName = "ports.json"
    public static let journalFileName = "ports.journal"
    public static let formatVersion: Int64 = 1
    /// Journal lines before the snapshot is rewritten.
    public let compactionRecords: Int

    public let directory: String
    public var path: String { directory + "/" + Self.fileName }
    public var journalPath: String { directory + "/" + Self.journalFileName }
    private let logger: Logger

    private struct Saved {
        var specs = SavedPortSpecs()
        var journal: FileDescriptor?
        var journalRecords = 0
    }
    private let saved = Mutex(Saved())

    public init(directory: String, logger: Logger, compactionRecords: Int = 4096) {
        self.compactionRecords = max(1, compactionRecords)
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
        /// Journal records replayed onto the snapshot.
        public var journalRecords = 0
    }

    /// Replaces everything saved with `specs` (each with its offered mask resolved, as
    /// `PortService` keeps them): a new snapshot, an empty journal.
    public func save(_ specs: [PortSpec]) throws(SystemError) {
        try saved.withLock { saved throws(SystemError) in
            saved.specs = SavedPortSpecs(specs)
            try writeSnapshot(&saved)
        }
    }

    /// Saves, logging instead of failing: the change already happened.
    public func saveLogging(_ specs: [PortSpec]) {
        do { try save(specs) } catch {
            logger.error("cannot save the port state", metadata: ["path": "\(path)", "error": "\(error)"])
        }
    }

    /// Appends one change to the journal (durable when this returns), compacting when the
    /// journal has grown long.
    public func record(_ change: PortChange) throws(SystemError) {
        try saved.withLock { saved throws(SystemError) in
            switch change {
            case .saved(let spec):
                saved.specs.save(spec)
            case .removed(let name):
                saved.specs.remove(name)
            }
            // The first change ever writes the snapshot, so ports.json always exists.
            if saved.journalRecords >= compactionRecords || (saved.journal == nil && FileSystem.kind(at: path) == nil) {
                try writeSnapshot(&saved)
                return
            }
            if saved.journal == nil {
                try FileSystem.makeDirectoryTree(directory, permissions: 0o700)
                saved.journal = try FileDescriptor.openForAppending(journalPath, permissions: 0o600)
                // The journal's own name must survive a crash too.
                try FileSystem.syncDirectory(containing: journalPath)
            }
            try saved.journal?.writeAll(Array((Self.journalLine(change).rendered(pretty: false) + "\n").utf8))
            try saved.journal?.synchronizeData()
            saved.journalRecords += 1
        }
    }

    /// Saves the ports of `specs` the store does not have yet (the config file's, at start).
    public func saveMissing(_ specs: [PortSpec]) {
        let missing = saved.withLock { saved in specs.filter { !saved.specs.contains($0.name) } }
        for spec in missing { portChanged(.saved(spec)) }
    }

    static func journalLine(_ change: PortChange) -> JSON {
        switch change {
        case .saved(let spec): ["saved": PortSpecEncoder.encode(spec)]
        case .removed(let name): ["removed": .string(name)]
        }
    }

    /// The snapshot of `saved.specs`, then an empty journal (a crash in between replays the
    /// journal onto the new snapshot: every record is idempotent).
    private func writeSnapshot(_ saved: inout Saved) throws(SystemError) {
        let document: JSON = [
            "version": .integer(Self.formatVersion),
            "ports": .array(saved.specs.inCreationOrder.map(PortSpecEncoder.encode)),
        ]
        try FileSystem.makeDirectoryTree(directory, permissions: 0o700)
        try FileSystem.writeFileAtomically(path, Array((document.rendered(pretty: true) + "\n").utf8), permissions: 0o600)
        if saved.journalRecords > 0 || saved.journal != nil || FileSystem.kind(at: journalPath) != nil {
            if saved.journal == nil { saved.journal = try FileDescriptor.openForAppending(journalPath, permissions: 0o600) }
            try saved.journal?.truncate(to: 0)
            try saved.journal?.synchronizeData()
        }
        saved.journalRecords = 0
    }

    /// Reads the snapshot and replays the journal onto it; what it finds becomes what the
    /// store has saved.
    public func load() -> Loaded {
        var loaded = Loaded()
        loadSnapshot(into: &loaded)
        replayJournal(into: &loaded)
        saved.withLock { saved in
            saved.specs = SavedPortSpecs(loaded.specs)
            saved.journalRecords = loaded.journalRecords
        }
        return loaded
    }

    /// The file's bytes; nil when it does not exist, or when it cannot be read (a problem,
    /// and the file is moved aside).
    private func contents(of file: String, maxBytes: Int, into loaded: inout Loaded) -> [UInt8]? {
        do { return try FileSystem.readFile(file, maxBytes: maxBytes) } catch {
            loaded.problems.append("cannot read \(file): \(error)")
            loaded.movedAside = moveAside(file)
            return nil
        }
    }

    private func loadSnapshot(into loaded: inout Loaded) {
        guard let bytes = contents(of: path, maxBytes: 16 << 20, into: &loaded) else { return }
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
            loaded.movedAside = moveAside(path)
            return
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
            loaded.movedAside = moveAside(path)
        }
    }

    /// Applies each journal line in order. A last line cut short (no newline: the write of
    /// a change that was never acknowledged) is dropped; any other bad line is a problem and
    /// the journal is moved aside, its good records kept.
    private func replayJournal(into loaded: inout Loaded) {
        guard let bytes = contents(of: journalPath, maxBytes: 64 << 20, into: &loaded), !bytes.isEmpty else { return }
        let lines = bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
        var specs = SavedPortSpecs(loaded.specs)
        defer { loaded.specs = specs.inCreationOrder }
        var bad = false
        for (index, line) in lines.enumerated() where !line.isEmpty {
            let isLast = index == lines.count - 1
            do throws(PortSpecDecoder.DecodingError) {
                guard let object = (try? JSON.parse(Array(line)))?.objectValue, object.count == 1 else {
                    throw PortSpecDecoder.DecodingError("not a journal record")
                }
                if let name = object["removed"]?.stringValue {
                    specs.remove(name)
                } else if let entry = object["saved"] {
                    let spec = try PortSpecDecoder.decode(entry)
                    specs.save(spec)
                } else {
                    throw PortSpecDecoder.DecodingError("not a journal record")
                }
                loaded.journalRecords += 1
            } catch {
                if isLast { continue }  // cut short by a crash before it was acknowledged
                loaded.problems.append("\(journalPath): line \(index + 1): \(error.message)")
                bad = true
            }
        }
        if bad { loaded.movedAside = moveAside(journalPath) ?? loaded.movedAside }
    }

    /// Renames `file` to `<file>.corrupt-<UTC timestamp>`; returns the new path.
    private func moveAside(_ file: String) -> String? {
        let stamp = Timestamp.rfc3339(milliseconds: MonotonicClock.wallMilliseconds())
            .replacingColons()
        let target = file + ".corrupt-" + stamp
        do {
            try FileSystem.rename(from: file, to: target)
            return target
        } catch {
            logger.error("cannot move the corrupt state file aside", metadata: ["path": "\(file)", "error": "\(error)"])
            return nil
        }
    }
}

extension PortStateStore: PortChangeObserver {
    public func portChanged(_ change: PortChange) {
        do { try record(change) } catch {
            logger.error("cannot save the port state", metadata: ["path": "\(journalPath)", "error": "\(error)"])
        }
    }
}

extension String {
    /// "2024-05-01T10:11:12.345Z" -> "20240501T101112.345Z": safe in file names.
    func replacingColons() -> String { String(filter { $0 != ":" && $0 != "-" }) }
}
