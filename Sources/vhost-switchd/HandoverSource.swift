import Logging
import ManagementPlane
import PortService
import VhostSystem
import VhostUser

/// The running daemon's side of a live hand-over: it listens on `<run-dir>/handover.sock`
/// (mode 0600; only root or our own user may connect). A `vhost-switchd --takeover` asks for
/// the ports; every change is held and every queue and kernel socket taken out of the poll
/// threads; the state document and every fd go over; then either the new process says
/// "commit" and this one exits 0 at once (deleting, unlinking and closing nothing: it all
/// belongs to the new process now), or anything else (it died, hung up, timed out, sent
/// something else) and this one puts everything back and forwards on.
final class HandoverSource: @unchecked Sendable {
    static let requestFrame = Array("takeover".utf8)
    static let commitFrame = Array("commit".utf8)
    /// How long the new process may take from the state's arrival to its commit.
    static let commitTimeoutMilliseconds = 30_000

    static func socketPath(runDir: String) -> String { runDir + "/handover.sock" }

    private let listener: FileDescriptor
    private let ports: PortService
    private let events: EventHub
    private let server: ManagementServer
    private let logger: Logger
    private let serviceManager: ServiceNotifier
    private var thread: SystemThread?

    init(runDir: String, ports: PortService, events: EventHub, server: ManagementServer, serviceManager: ServiceNotifier,
         logger: Logger) throws(SystemError) {
        listener = try UnixSocket.listen(path: Self.socketPath(runDir: runDir), backlog: 2, permissions: 0o600)
        self.ports = ports
        self.events = events
        self.server = server
        self.serviceManager = serviceManager
        self.logger = logger
        thread = try SystemThread(name: "handover") { [self] in run() }
    }

    /// Shutdown: the socket file goes with this daemon (a takeover finds nobody to ask).
    func removeSocketFile(runDir: String) {
        FileSystem.remove(Self.socketPath(runDir: runDir))
    }

    private func run() {
        while true {
            guard let socket = try? UnixSocket.accept(listener) else {
                SystemThread.sleep(milliseconds: 50)
                continue
            }
            serve(HandoverChannel(socket: socket))
            socket.close()
        }
    }

    private func serve(_ channel: HandoverChannel) {
        guard let peer = channel.peerUserID, peer == 0 || peer == PeerIdentity.ownUserID else {
            logger.warning("hand-over refused: peer user \(channel.peerUserID.map(String.init) ?? "unknown")")
            return
        }
        do {
            guard try channel.receiveFrame(timeoutMilliseconds: 5000) == Self.requestFrame else {
                logger.warning("hand-over refused: not a takeover request")
                return
            }
        } catch {
            logger.warning("hand-over refused: \(error)")
            return
        }
        logger.notice("a new process takes over: quiescing")
        let committed = ports.handOver { [self] handover in transfer(handover, over: channel) }
        if committed {
            logger.notice("handed over to the new process; exiting")
            // Closed before the channel (which closes at exit): when the new process sees the
            // channel end, nobody listens here any more and it can take the socket's path.
            listener.close()
            // systemd's main process moves only now: a takeover killed before its commit
            // leaves the service with this daemon, which went on serving.
            if let pid = PeerIdentity.unixPeerProcessID(channel.socket.rawValue) { serviceManager.handOverMainProcess(to: pid) }
            ProcessControl.exitImmediately(0)
        }
        logger.warning("hand-over failed; forwarding resumed")
    }

    /// Runs with every queue withdrawn; true once the new process committed.
    private func transfer(_ handover: PortHandover, over channel: HandoverChannel) -> Bool {
        let quiescedAt = MonotonicClock.nanoseconds()
        var descriptors = handover.vhostUser.descriptors
        func add(_ raw: Int32?) -> Int? {
            guard let raw, raw >= 0, let copy = try? FileDescriptor.duplicate(raw) else { return nil }
            descriptors.append(copy)
            return descriptors.count - 1
        }
        let listeners = server.listenerDescriptors
        let api = HandoverDocument.APIListeners(unix: add(listeners.unix), tcp: add(listeners.tcp), metrics: add(listeners.metrics))
        let devices = Dictionary(uniqueKeysWithValues: handover.vhostUser.devices.map { ($0.name, $0) })
        let document = HandoverDocument(
            descriptorCount: descriptors.count, eventSequence: events.lastEventID, quiescedAtNanoseconds: quiescedAt, api: api,
            ports: handover.specs.map { PortHandover.Port(spec: $0, device: devices[$0.name]) }, pendingPorts: handover.pendingSpecs,
            macTable: handover.macTable)
        do {
            try channel.send(frame: Array(HandoverDocumentEncoder.encode(document).rendered().utf8))
            try channel.send(descriptors: descriptors)
            let answer = try channel.receiveFrame(timeoutMilliseconds: Self.commitTimeoutMilliseconds)
            guard answer == Self.commitFrame else {
                logger.warning("hand-over: the new process refused: \(String(decoding: answer, as: UTF8.self))")
                return false
            }
            return true
        } catch {
            logger.warning("hand-over: \(error)")
            return false
        }
    }
}
