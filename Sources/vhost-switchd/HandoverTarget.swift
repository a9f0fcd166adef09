import ManagementPlane
import PortService
import VhostSystem
import VhostUser

/// The new daemon's side of a live hand-over (`vhost-switchd --takeover`): it asks the running
/// daemon for its state, takes the ports over as they are (each session validated as a
/// front-end's requests), serves the API on the same listeners, and only then commits: until
/// that point the old daemon resumes if this one fails or dies. The test hook
/// VHOST_SWITCH_HANDOVER_CRASH_AT=<step> kills this process at that step.
struct HandoverTarget {
    enum Step: String, CaseIterable {
        /// Connected to the running daemon, nothing asked yet.
        case connected
        /// The state document and fds received (the old daemon is quiesced).
        case received
        /// Every port made from the state: memory mapped, rings built; nothing read or polled
        /// until the commit.
        case adopted
        /// The API serves on the handed-over listeners; commit is next.
        case serving
    }

    let channel: HandoverChannel
    let document: HandoverDocument
    let descriptors: VhostUserHandoverDescriptors

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    static func reached(_ step: Step) { ProcessControl.crashIfRequested(at: step.rawValue) }

    /// Connects to the daemon running in `runDir` and receives its state.
    static func receive(runDir: String) throws(Failure) -> HandoverTarget {
        do {
            let channel = try HandoverChannel.connect(path: HandoverSource.socketPath(runDir: runDir))
            reached(.connected)
            try channel.send(frame: HandoverSource.requestFrame)
            let text = try channel.receiveFrame(timeoutMilliseconds: 10_000)
            let document: HandoverDocument
            do {
                document = try HandoverDocumentDecoder.decode(try JSON.parse(text))
            } catch {
                throw Failure(description: "the state document was refused: \(error)")
            }
            let received = try channel.receiveDescriptors(count: document.descriptorCount, timeoutMilliseconds: 10_000)
            reached(.received)
            return HandoverTarget(channel: channel, document: document, descriptors: VhostUserHandoverDescriptors(received))
        } catch let failure as Failure {
            throw failure
        } catch {
            throw Failure(description: "\(error)")
        }
    }

    /// Makes every port as it was and refills the MAC table (`PortService.startAdoptedPorts`
    /// starts them after the commit).
    func adoptPorts(into ports: PortService) throws(Failure) {
        do {
            try ports.adopt(document.ports, macTable: document.macTable, descriptors: descriptors)
        } catch {
            throw Failure(description: error.message)
        }
        Self.reached(.adopted)
    }

    func apiListeners() throws(Failure) -> ManagementServer.InheritedListeners {
        func take(_ index: Int?, _ what: String) throws(Failure) -> FileDescriptor? {
            guard let index else { return nil }
            do { return try descriptors.take(index, for: what) } catch { throw Failure(description: "\(error)") }
        }
        return ManagementServer.InheritedListeners(unix: try take(document.api.unix, "API socket"), tcp: try take(document.api.tcp, "API TCP listener"),
                                                   metrics: try take(document.api.metrics, "metrics listener"))
    }

    /// Tells the old daemon to exit and waits until it did (its end of the channel closes).
    func commit() throws(Failure) -> Bool {
        Self.reached(.serving)
        descriptors.closeRemaining()
        do { try channel.send(frame: HandoverSource.commitFrame) } catch { throw Failure(description: "commit: \(error)") }
        return channel.waitForClose(timeoutMilliseconds: 10_000)
    }

    /// Milliseconds since the old daemon withdrew its queues (same host, same monotonic clock).
    var gapMilliseconds: Int64 {
        let now = MonotonicClock.nanoseconds()
        return Int64(now > document.quiescedAtNanoseconds ? (now - document.quiescedAtNanoseconds) / 1_000_000 : 0)
    }
}
