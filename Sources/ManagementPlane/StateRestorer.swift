import Dataplane
import Logging
import PortService

/// Start-up: re-creates the ports saved in the state directory. Problems are logged, never
/// fatal: one bad entry must not keep the other ports (and the API) down.
public enum StateRestorer {
    /// Returns the names of the ports restored.
    @discardableResult
    public static func restore(from store: PortStateStore, into ports: PortService, logger: Logger) -> Set<String> {
        let loaded = store.load()
        for problem in loaded.problems {
            logger.error("saved port state: \(problem)")
        }
        if let movedAside = loaded.movedAside {
            logger.error("the unusable state file was moved aside; nothing in it is lost",
                         metadata: ["path": "\(store.path)", "moved-to": "\(movedAside)"])
        }
        var restored = Set<String>()
        for spec in loaded.specs {
            do {
                try ports.create(spec)
                restored.insert(spec.name)
            } catch {
                logger.error("cannot restore saved port \(spec.name): \(error.message)",
                             metadata: ["spec": "\(PortSpecEncoder.encode(spec).rendered())"])
            }
        }
        if !loaded.specs.isEmpty {
            logger.info("restored \(restored.count) of \(loaded.specs.count) saved ports", metadata: ["state": "\(store.path)"])
        }
        if loaded.movedAside != nil || loaded.journalRecords > 0 {
            // One fresh snapshot: the good entries (beside a moved-aside original) and the
            // journal folded in. Ports that failed to restore stay saved.
            store.saveLogging(loaded.specs)
        }
        return restored
    }
}
