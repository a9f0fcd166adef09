import Dataplane
import VhostSystem

/// Saved ports that failed to restore (`PendingRestore`): kept in `specs` (so the state
/// file never loses them), listed by `pendingRestoreViews`, retried by housekeeping, and
/// removed by `delete`. A create with a pending port's name is a conflict.
extension PortService {
    /// Start-up: creates a saved port, or keeps it pending when that fails.
    @discardableResult
    public func restore(_ spec: PortSpec) throws(PortError) -> PortView {
        do {
            return try create(spec)
        } catch {
            changes.withLock { _ in
                var entry = PendingRestore(spec: spec, lastError: error.message, attempts: 0, nextAttemptAt: 0)
                entry.failed(error, now: MonotonicClock.nanoseconds())
                pendingRestores.withLock { pending in
                    if !pending.contains(where: { $0.spec.name == spec.name }) { pending.append(entry) }
                }
            }
            throw error
        }
    }

    /// The pending ports, in save order.
    public var pendingRestoreViews: [PendingRestore] { pendingRestores.withLock { $0 } }

    func isPendingRestore(_ name: String) -> Bool {
        pendingRestores.withLock { $0.contains { $0.spec.name == name } }
    }

    /// Drops a pending port (DELETE); false when there is none of that name. `changes` held.
    func forgetPendingRestore(_ name: String) -> Bool {
        pendingRestores.withLock { pending in
            let before = pending.count
            pending.removeAll { $0.spec.name == name }
            return pending.count != before
        }
    }

    /// Housekeeping (once a second): tries the pending ports whose time has come.
    func retryPendingRestores() {
        let now = MonotonicClock.nanoseconds()
        guard pendingRestores.withLock({ $0.contains { $0.nextAttemptAt <= now } }) else { return }
        changes.withLock { _ in
            for entry in pendingRestores.withLock({ $0 }) where entry.nextAttemptAt <= now {
                do throws(PortError) {
                    let port = try makePort(entry.spec)
                    _ = forgetPendingRestore(entry.spec.name)
                    changed(.saved(port.spec))
                    logger.notice("restored saved port after \(entry.attempts) failed attempts", metadata: ["port": "\(entry.spec.name)"])
                } catch {
                    pendingRestores.withLock { pending in
                        guard let index = pending.firstIndex(where: { $0.spec.name == entry.spec.name }) else { return }
                        pending[index].failed(error, now: now)
                    }
                    logger.warning("saved port still cannot be restored: \(error.message)", metadata: [
                        "port": "\(entry.spec.name)", "attempts": "\(entry.attempts + 1)"])
                }
            }
        }
    }
}
