extension XDPSocket {
    /// Why an AF_XDP socket could not be set up: the kind decides the API's answer (a bad
    /// request, a conflict, or the host's failure), the system error says which call failed.
    public struct Failure: Error, Equatable, CustomStringConvertible {
        public enum Kind: Sendable, Equatable {
            case invalidConfiguration
            case noSuchInterface
            /// The interface's MTU does not fit a UMEM frame (no multi-buffer support).
            case mtuTooLarge
            /// bind refused the queue id (the interface has fewer queues).
            case noSuchQueue
            /// The driver has no native XDP (mode native), or no mode took (auto).
            case modeUnsupported
            /// Another XDP program is attached to the interface.
            case busy
            /// The kernel has no AF_XDP.
            case unsupported
            /// CAP_NET_ADMIN, CAP_NET_RAW, CAP_BPF or CAP_SYS_ADMIN missing.
            case permissionDenied
            case failed
        }

        public let kind: Kind
        public let error: SystemError

        public init(_ kind: Kind, _ error: SystemError) {
            self.kind = kind
            self.error = error
        }

        public var description: String { error.description }
    }
}
