/// Why a message or a session was refused. The description is what operators see in logs
/// and in `deviceReportedError`.
public enum VhostUserProtocolError: Error, Equatable, Sendable, CustomStringConvertible {
    // Framing: the session ends.
    case shortHeader(received: Int)
    case badVersion(UInt32)
    case replyFlagOnRequest
    case payloadTooLarge(UInt32)
    case disconnectedMidMessage(received: Int, expected: Int)
    case replyWouldBlock
    case socketError(String)
    // Refused requests: the session continues (REPLY_ACK failure when asked for).
    case unknownRequest(UInt32)
    case unsupportedRequest(VhostUserRequest)
    case protocolFeatureRequired(VhostUserRequest, String)
    case wrongPayloadSize(VhostUserRequest, size: Int, expected: String)
    case tooManyDescriptors(VhostUserRequest)
    case unexpectedDescriptors(VhostUserRequest, count: Int)
    case missingDescriptor(VhostUserRequest)
    case descriptorWithNoFdFlag(VhostUserRequest)
    case descriptorCountMismatch(VhostUserRequest, descriptors: Int, regions: Int)
    case invalidPayload(VhostUserRequest, String)
    case vringIndexOutOfRange(VhostUserRequest, index: UInt64, count: Int)
    case featuresNotOffered(requested: UInt64, offered: UInt64)
    case featureChangeWhileRunning(from: UInt64, to: UInt64)
    case memoryTableRefused(VhostUserRequest, String)
    case noMemoryTable(VhostUserRequest)
    case ringNotConfigured(VhostUserRequest, String)
    case dirtyLogRefused(String)
    /// A handed-over session's state that no front-end request could have made (live hand-over).
    case handoverRefused(String)
    // Containment: the session ends, the rest of the switch goes on.
    case guestMemoryFault
    case ringStopped
    case tooManyRingChanges(perSecond: Int)

    public var description: String {
        switch self {
        case .shortHeader(let received): "connection closed after \(received) of 12 header bytes"
        case .badVersion(let flags): "header version is not 1 (flags 0x\(String(flags, radix: 16)))"
        case .replyFlagOnRequest: "reply flag set on a request"
        case .payloadTooLarge(let size): "payload size \(size) exceeds \(VhostUserHeader.maxPayloadSize)"
        case .disconnectedMidMessage(let received, let expected): "connection closed mid-message (\(received) of \(expected) payload bytes)"
        case .replyWouldBlock: "front-end does not read its replies (send would block)"
        case .socketError(let text): "socket error: \(text)"
        case .unknownRequest(let code): "unknown request code \(code)"
        case .unsupportedRequest(let request): "\(request) is not supported by this back-end"
        case .protocolFeatureRequired(let request, let feature): "\(request) requires protocol feature \(feature)"
        case .wrongPayloadSize(let request, let size, let expected): "\(request): payload size \(size), expected \(expected)"
        case .tooManyDescriptors(let request): "\(request): more than 8 file descriptors"
        case .unexpectedDescriptors(let request, let count): "\(request): \(count) unexpected file descriptor(s)"
        case .missingDescriptor(let request): "\(request): file descriptor missing"
        case .descriptorWithNoFdFlag(let request): "\(request): file descriptor sent with the NOFD flag"
        case .descriptorCountMismatch(let request, let descriptors, let regions): "\(request): \(descriptors) file descriptor(s) for \(regions) region(s)"
        case .invalidPayload(let request, let text): "\(request): \(text)"
        case .vringIndexOutOfRange(let request, let index, let count): "\(request): vring index \(index) out of range (\(count) vrings)"
        case .featuresNotOffered(let requested, let offered): "features 0x\(String(requested, radix: 16)) include bits not offered (0x\(String(requested & ~offered, radix: 16)))"
        case .featureChangeWhileRunning(let from, let to): "feature change 0x\(String(from, radix: 16)) -> 0x\(String(to, radix: 16)) while rings run (only LOG_ALL may change)"
        case .memoryTableRefused(let request, let text): "\(request): memory refused: \(text)"
        case .noMemoryTable(let request): "\(request) before SET_MEM_TABLE"
        case .ringNotConfigured(let request, let text): "\(request): \(text)"
        case .dirtyLogRefused(let text): "SET_LOG_BASE: \(text)"
        case .handoverRefused(let text): "handed-over session refused: \(text)"
        case .guestMemoryFault: "guest memory or dirty log could not be accessed (the front-end shrank its file, or its pages cannot be faulted in)"
        case .ringStopped: "a ring kept producing invalid descriptor chains and was stopped"
        case .tooManyRingChanges(let limit): "more than \(limit) ring-changing requests in one second"
        }
    }
}
