import VhostSystem

/// Who may use the write-capable API on TCP. Anyone who can connect could create and delete
/// ports and flush the MAC table, and on a node "anyone" includes every hostNetwork pod:
/// a token is required, unless the operator says `--insecure-tcp` and the address is
/// loopback (then it is only logged as a warning). Anything else is refused at start.
public enum TCPListenerPolicy {
    /// Throws when the daemon must not start; returns the warning to log, if any.
    public static func check(listen: TCPSocket.Address, hasToken: Bool, allowInsecure: Bool) throws(ManagementServer.StartError) -> String? {
        if hasToken { return nil }
        guard allowInsecure else {
            throw ManagementServer.StartError(description: "--listen \(listen) serves the write-capable API on TCP: give --api-token-file FILE (or --insecure-tcp, on a loopback address only)")
        }
        guard listen.isLoopback else {
            throw ManagementServer.StartError(description: "--insecure-tcp is only allowed on a loopback address, and \(listen) is not one: give --api-token-file FILE")
        }
        return "the API on TCP \(listen) has no token (--insecure-tcp): every process on this host can manage the switch through it"
    }
}
