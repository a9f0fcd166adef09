import VhostSystem

/// Live hand-over of a session. The old process exports it with its queues withdrawn (and
/// republishes them if the hand-over fails); the new one adopts it: its state is replayed as
/// the front-end's own requests (`VhostUserSessionReplay`) through this connection's
/// dispatcher, so it is checked exactly as a front-end's would be. Nothing is sent to the
/// front-end; it does not notice.
extension VhostUserConnection {
    /// Withdraws the session's queues (every ring's position is then where it stopped) and
    /// describes the session, appending its fds to `descriptors` (borrowed: still owned here).
    public func exportForHandover(into descriptors: inout [FileDescriptor]) -> VhostUserSessionExport {
        session.withdrawQueues()
        return session.export(socket: socket, into: &descriptors)
    }

    /// The hand-over failed: the queues go back to the dataplane where they stopped.
    public func resumeAfterHandover() {
        guard !isClosed else { return }
        session.resumeFromGuestMemoryAfterHandover()
        session.publishQueues()
    }

    /// Adopts `socket` with the session `export` describes, taking its fds from
    /// `descriptors`. Any refusal ends the adopted session and is thrown. With `publish`
    /// false the rings wait for `startAdopted()`: a process taking over many ports starts
    /// them together, so no port forwards to one whose rings are not polled yet.
    public static func adopt(device: VhostUserDevice, socket: FileDescriptor, export: VhostUserSessionExport,
                             descriptors: VhostUserHandoverDescriptors, publish: Bool = true) throws(VhostUserProtocolError) -> VhostUserConnection {
        guard UnixSocket.isConnectedStream(socket) else {
            socket.close()
            throw .handoverRefused("fd \(export.socket) is not a connected unix stream socket")
        }
        guard export.offeredFeatures & ~VhostUserDevice.supportedFeatures == 0 else {
            socket.close()
            throw .handoverRefused("offered features 0x\(String(export.offeredFeatures, radix: 16)) include unsupported bits")
        }
        let connection = VhostUserConnection(device: device, socket: socket, adoptedOffer: export.offeredFeatures)
        do {
            try connection.replay(export, descriptors)
        } catch {
            connection.close(reason: error)
            throw error
        }
        if publish { connection.startAdopted() }
        return connection
    }

    /// Publishes an adopted session's queues (the ready rule decides, as after a handshake).
    public func startAdopted() { publishIfPending() }

    private func replay(_ export: VhostUserSessionExport, _ descriptors: VhostUserHandoverDescriptors) throws(VhostUserProtocolError) {
        let replay = VhostUserSessionReplay(export: export, vringCount: session.vrings.count)
        var messages = try replay.messages(taking: descriptors)
        replaying = true
        defer { replaying = false }
        for index in messages.indices {
            dispatch(&messages[index])
            let failure = replayFailure ?? (isClosed ? closeReason ?? .handoverRefused("session closed during the replay") : nil)
            if let failure {
                // The fds of the requests not replayed are closed now, not when the last copy goes.
                for message in messages[(index + 1)...] { message.closeDescriptors() }
                throw failure
            }
        }
        for ring in export.vrings {
            if let usedBase = try replay.usedBase(of: ring) { session.vrings[ring.index].position.usedBase = usedBase }
        }
    }
}
