import Logging
import ManagementPlane
import VhostSystem

/// Signals after start-up: SIGTERM and SIGINT stop the daemon; SIGHUP re-reads the API
/// token file (rotation without a restart; a file that cannot be used keeps the old token)
/// and keeps running.
enum SignalLoop {
    static func waitForStop(_ signals: SignalWaiter, token: APITokenSource?, logger: Logger) -> Int32 {
        while true {
            let signal = signals.wait()
            guard signal == SignalWaiter.hangup else { return signal }
            guard let token, let path = token.path else {
                logger.notice("SIGHUP: nothing to reload (no --api-token-file)")
                continue
            }
            do {
                try token.reload()
                logger.notice("SIGHUP: API token reloaded", metadata: ["file": "\(path)"])
            } catch {
                logger.error("SIGHUP: keeping the current API token: \(error.description)")
            }
        }
    }
}
