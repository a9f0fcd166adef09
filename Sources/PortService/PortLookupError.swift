/// Why a read or a feature change could not find what it names.
public enum PortLookupError: Error, Equatable, Sendable {
    case noPort(String)
    /// The port exists but has no vhost-user device (an af-packet port): its type name.
    case notVhostUser(port: String, type: String)
}
