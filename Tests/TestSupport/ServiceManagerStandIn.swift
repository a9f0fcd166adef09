import Foundation
import Synchronization
import VhostSystem

/// Stands in for systemd's notification socket: a datagram socket in a temporary directory
/// (`address`, for NOTIFY_SOCKET) whose messages a background thread records with the time
/// they arrived, and an optional `onMessage` runs for (in the reader thread, before the next
/// message is read).
public final class ServiceManagerStandIn: @unchecked Sendable {
    public struct Message: Sendable {
        public var text: String
        public var nanoseconds: UInt64
        /// Each newline-separated KEY=VALUE assignment of the datagram.
        public var assignments: [String] { text.split(separator: "\n").map(String.init) }
    }

    /// What the reader thread shares with the tests (not `self`, so the stand-in can go away).
    private final class Inbox: Sendable {
        let received = Mutex<[Message]>([])
        let stopped = Atomic<Bool>(false)
    }

    public let address: String
    private let directory: String
    private let socket: FileDescriptor
    private let inbox = Inbox()

    public init(onMessage: (@Sendable (Message) -> Void)? = nil) throws {
        directory = NSTemporaryDirectory() + "notify-" + String(UInt32.random(in: 0...UInt32.max), radix: 36)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        address = directory + "/notify.sock"
        socket = try ServiceManagerSocket.listen(path: address)
        Thread { [socket, inbox] in
            while !inbox.stopped.load(ordering: .relaxed) {
                guard let datagram = try? UnixSocket.receive(socket, maxBytes: 4096) else {
                    usleep(1000)
                    continue
                }
                let message = Message(text: String(decoding: datagram.bytes, as: UTF8.self), nanoseconds: MonotonicClock.nanoseconds())
                onMessage?(message)
                inbox.received.withLock { $0.append(message) }
                // BARRIER=1: handled once every earlier message is; closing the fd says so.
                datagram.descriptors.forEach { $0.close() }
            }
        }.start()
    }

    deinit {
        inbox.stopped.store(true, ordering: .relaxed)
        try? FileManager.default.removeItem(atPath: directory)
    }

    public var messages: [Message] { inbox.received.withLock { $0 } }

    /// Every message that carries `assignment` (e.g. "WATCHDOG=1").
    public func messages(with assignment: String) -> [Message] { messages.filter { $0.assignments.contains(assignment) } }

    /// The first message with `assignment`, waiting up to `timeout`.
    public func waitFor(_ assignment: String, timeout: TimeInterval = 10) -> Message? {
        let deadline = Date().addingTimeInterval(timeout)
        repeat {
            if let message = messages(with: assignment).first { return message }
            Thread.sleep(forTimeInterval: 0.01)
        } while Date() < deadline
        return nil
    }
}
