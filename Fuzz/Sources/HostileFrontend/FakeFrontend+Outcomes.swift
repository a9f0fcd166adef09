import TestSupport
import VhostSystem
import VhostUser

/// The tool drives the test kit's `FakeFrontend`, but to a hostile front-end a failed send is
/// an outcome, not an error: the daemon closed the session (EPIPE, ECONNRESET) or left the
/// socket full for a second. These answer with a Bool or nil instead of throwing, and wait
/// for replies one second, as the cases expect.
extension FakeFrontend {
    /// Sends everything: false when the daemon closed the connection or the socket stayed
    /// full for `timeoutMilliseconds`.
    @discardableResult
    func offer(_ bytes: [UInt8], fds: [FileDescriptor] = [], timeoutMilliseconds: Int = 1000) -> Bool {
        (try? sendRaw(bytes, fds: fds, timeoutMilliseconds: timeoutMilliseconds)) != nil
    }

    /// Any request code with any header flags (NEED_REPLY added when `needReply`).
    @discardableResult
    func offer(_ code: UInt32, _ payload: [UInt8] = [], fds: [FileDescriptor] = [], needReply: Bool = false,
               flags: UInt32 = VhostUserHeader.version) -> Bool {
        (try? sendCode(code, payload, fds: fds, needReply: needReply, flags: flags, timeoutMilliseconds: 1000)) != nil
    }

    @discardableResult
    func offer(_ request: VhostUserRequest, _ payload: [UInt8] = [], fds: [FileDescriptor] = [], needReply: Bool = false) -> Bool {
        offer(request.rawValue, payload, fds: fds, needReply: needReply)
    }

    /// Sends with need_reply and returns the REPLY_ACK value; nil when the daemon closed the
    /// connection or did not answer within a second.
    func ack(_ request: VhostUserRequest, _ payload: [UInt8] = [], fds: [FileDescriptor] = []) -> UInt64? {
        guard offer(request, payload, fds: fds, needReply: true) else { return nil }
        return receiveAnswer(timeoutMilliseconds: 1000).u64
    }
}
