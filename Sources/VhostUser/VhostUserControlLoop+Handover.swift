import VhostSystem

/// What the control loop hands to a new process: every device as plain values, and the fds
/// they name (borrowed: the loop still owns them; they are sent, not closed).
public struct VhostUserHandover: @unchecked Sendable {
    public var devices: [VhostUserDeviceExport]
    public var descriptors: [FileDescriptor]
}

/// Live hand-over, both sides. The old process: `handOver` quiesces every device and runs the
/// transfer on the control thread, so no request is handled and no ring moves meanwhile. The
/// new process: `adoptDevice` takes a device's listener and session as they were.
extension VhostUserControlLoop {
    /// Withdraws every device's queues from the dataplane, exports the devices and calls
    /// `transfer` on the control thread (it blocks the loop: nothing changes meanwhile).
    /// `transfer` returns true once the new process committed: the loop then stops for good
    /// (the process is about to exit; its sockets stay open in the new one). Otherwise every
    /// session's queues are published again and the loop goes on as before.
    public func handOver(_ transfer: @escaping @Sendable (VhostUserHandover) -> Bool) -> Bool {
        perform {
            var descriptors: [FileDescriptor] = []
            var devices: [VhostUserDeviceExport] = []
            for endpoint in self.endpoints.values.sorted(by: { $0.device.name < $1.device.name }) {
                let device = endpoint.device
                var export = VhostUserDeviceExport(name: device.name, sessions: device.sessionCount, refusedRequests: device.refusedRequests,
                                                   sessionsClosedOnError: device.sessionsClosedOnError, guestFaults: device.guestFaults)
                if let listener = endpoint.listener {
                    descriptors.append(listener)
                    export.listener = descriptors.count - 1
                }
                if let connection = device.connection, !connection.isClosed {
                    export.session = connection.exportForHandover(into: &descriptors)
                }
                devices.append(export)
            }
            let committed = transfer(VhostUserHandover(devices: devices, descriptors: descriptors))
            if committed {
                self.stopping = true
            } else {
                for endpoint in self.endpoints.values { endpoint.device.connection?.resumeAfterHandover() }
            }
            return committed
        }
    }

    /// Adds a device handed over by the previous process: its listener (server mode: bound to
    /// the configured path) and its session (replayed and validated as a front-end's
    /// requests), with its counters. Nothing is unlinked on failure: the files are still the
    /// old process's.
    public func adoptDevice(_ configuration: VhostUserDeviceConfiguration, delegate: any VhostUserDeviceDelegate,
                            export: VhostUserDeviceExport, descriptors: VhostUserHandoverDescriptors) throws(VhostUserConfigurationError) -> VhostUserDevice {
        let logger = self.logger
        return try perform { () throws(VhostUserConfigurationError) -> VhostUserDevice in
            guard !self.deviceNames.contains(configuration.name) else { throw .duplicateName(configuration.name) }
            let device = try VhostUserDevice(configuration: configuration, delegate: delegate, logger: logger)
            device.faultNotifyDescriptor = self.guestFaults.rawValue
            let endpoint = Endpoint(device: device)
            do throws(VhostUserProtocolError) {
                switch configuration.mode {
                case .server:
                    guard let index = export.listener else { throw .handoverRefused("server port \(configuration.name) without its listener") }
                    let listener = try descriptors.take(index, for: "port \(configuration.name) listener")
                    guard UnixSocket.listeningPath(listener) == configuration.socketPath else {
                        listener.close()
                        throw .handoverRefused("fd \(index) is not a socket listening on \(configuration.socketPath)")
                    }
                    try? listener.setNonBlocking()
                    endpoint.listener = listener
                    do { endpoint.listenerToken = try self.register(listener.rawValue, .listener(endpoint)) } catch {
                        throw .handoverRefused("epoll: \(error)")
                    }
                    device.endpointState = .listening
                case .client:
                    guard export.listener == nil else { throw .handoverRefused("client port \(configuration.name) with a listener") }
                    device.endpointState = .connecting
                }
                if let session = export.session {
                    let socket = try descriptors.take(session.socket, for: "port \(configuration.name) session")
                    let connection = try VhostUserConnection.adopt(device: device, socket: socket, export: session,
                                                                   descriptors: descriptors, publish: false)
                    self.watch(endpoint, connection)
                }
            } catch {
                self.discardAdopted(endpoint)
                throw .handover("port \(configuration.name): \(error)")
            }
            device.sessionCount = export.sessions
            device.refusedRequests = export.refusedRequests
            device.sessionsClosedOnError = export.sessionsClosedOnError
            device.guestFaults = export.guestFaults
            self.endpoints[ObjectIdentifier(device)] = endpoint
            self.deviceNames.insert(configuration.name)
            if configuration.mode == .client && device.connection == nil { self.attemptConnect(endpoint) }
            device.logger.info("adopted from the previous process", metadata: ["session": "\(device.connection != nil)"])
            return device
        }
    }

    /// Starts every adopted session's rings at once, once every port is adopted.
    public func startAdoptedSessions() {
        perform {
            for endpoint in self.endpoints.values { endpoint.device.connection?.startAdopted() }
        }
    }

    /// Undoes a failed adoption without touching the socket file.
    private func discardAdopted(_ endpoint: Endpoint) {
        endpoint.device.connection?.close(reason: nil)
        if let listener = endpoint.listener {
            epoll.remove(listener.rawValue)
            registrations[endpoint.listenerToken] = nil
            listener.close()
        }
        endpoint.listener = nil
    }
}
