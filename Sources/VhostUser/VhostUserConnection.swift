import Logging
import VhostSystem
import Virtio

/// One front-end session on a device: reads messages, checks them against
/// `VhostUserMessageRule`, runs the small handler for each, replies, and publishes the
/// rings to the dataplane when they are ready. Only one thread drives it (the control
/// loop's, or a test's); it never blocks: reads and replies are non-blocking, and a
/// front-end that does not read its replies is disconnected.
public final class VhostUserConnection: @unchecked Sendable {
    public let device: VhostUserDevice
    let socket: FileDescriptor
    private var reader = VhostUserMessageReader()
    /// The device's offered features when the session started; fixed for the session.
    public let sessionOfferedFeatures: UInt64
    public private(set) var negotiatedFeatures: UInt64?
    public private(set) var negotiatedProtocolFeatures: UInt64?
    private var memory: GuestMemory?
    private var memoryRegions: [GuestMemoryRegion] = []
    private var dirtyLog: DirtyLog?
    private let vrings: [VhostUserVring]
    private var mtu: Int?
    private var status: UInt8 = 0
    private var ringsStoppedReported = false
    private var errorLimiter = VhostUserErrorRateLimiter()
    /// Raised by the SIGBUS handler (this session's guest memory or log faulted) or by a
    /// poll thread (one of its rings stopped); the control loop then calls `closeIfFaulted`.
    public let faultFlag: GuestFaultFlag
    private var ringChangeBudget: RingChangeBudget
    /// Ring-changing requests were handled since the queues were last published: publish
    /// once, when the socket has nothing more to read (one republish per batch, not two per request).
    private var publicationPending = false
    public private(set) var isClosed = false
    /// Why the session ended; nil while open or after an orderly close.
    public private(set) var closeReason: VhostUserProtocolError?
    /// Called once, before the socket closes (the control loop unregisters it from epoll).
    var willClose: ((VhostUserConnection) -> Void)?
    /// Messages handled in this session (accepted or refused).
    public private(set) var messageCount = 0

    private var logger: Logger { device.logger }

    /// Starts a session on `socket` (non-blocking, connected). Replaces nothing: the
    /// caller makes sure the device has no other session.
    public init(device: VhostUserDevice, socket: FileDescriptor) {
        self.device = device
        self.socket = socket
        sessionOfferedFeatures = device.offeredFeatures
        vrings = (0..<(2 * device.configuration.maxQueuePairs)).map { VhostUserVring(index: $0) }
        faultFlag = GuestFaultFlag(notifyDescriptor: device.faultNotifyDescriptor)
        ringChangeBudget = RingChangeBudget(perSecond: VhostUserLimits.ringChangesPerSecond
                                            + VhostUserLimits.ringChangesPerSecondPerVring * vrings.count)
        try? socket.setNonBlocking()
        device.connection = self
        device.sessionCount += 1
        logger.info("front-end connected", metadata: ["offered": "0x\(String(sessionOfferedFeatures, radix: 16))"])
        device.delegate.deviceConnected(device)
    }

    // MARK: Input

    /// Handles what the socket has now, at most `maxMessages` messages (the control loop
    /// comes back while the socket stays readable). Returns false once the session ended.
    @discardableResult
    public func handleReadable(maxMessages: Int = 64) -> Bool {
        var handled = 0
        defer { publishIfPending() }
        while !isClosed && handled < maxMessages {
            switch reader.next(from: socket) {
            case .needMoreData:
                return true
            case .closed:
                close(reason: nil)
            case .failed(let error):
                close(reason: error)
            case .message(var message):
                handled += 1
                dispatch(&message)
            }
        }
        return !isClosed
    }

    /// Closes the session when its fault flag was raised (see `faultFlag`); true if it did.
    /// The control thread calls this when the flag's eventfd fires; a test calls it directly.
    @discardableResult
    public func closeIfFaulted() -> Bool {
        let raised = faultFlag.raised
        guard !isClosed, !raised.isEmpty else { return false }
        device.guestFaults += 1
        close(reason: raised.contains(.memoryFault) ? .guestMemoryFault : .ringStopped)
        return true
    }

    /// Ends the session: queues withdrawn, `deviceDestroyed`, every fd and mapping released.
    public func close(reason: VhostUserProtocolError?) {
        guard !isClosed else { return }
        isClosed = true
        closeReason = reason
        reader.reset()
        if let reason {
            device.sessionsClosedOnError += 1
            device.lastError = reason.description
            report(reason, closing: true)
        } else {
            logger.info("front-end disconnected")
        }
        device.sessionEnded(notify: true)
        for ring in vrings { ring.reset() }
        memory = nil
        memoryRegions = []
        dirtyLog = nil
        willClose?(self)
        willClose = nil
        socket.close()
        if device.connection === self { device.connection = nil }
    }

    // MARK: Dispatch

    private enum Outcome {
        case done
        case reply([UInt8])
        case refused(VhostUserProtocolError)
    }

    private func dispatch(_ message: inout VhostUserMessage) {
        messageCount += 1
        // Whatever a handler did not take is closed when the message is done.
        defer { message.closeDescriptors() }
        guard let request = message.request else {
            refuse(message, .unknownRequest(message.header.request), reply: .ackOnly)
            return
        }
        if logger.logLevel <= .debug {
            // The first 8 payload bytes name the vring and its value for most ring messages.
            let head = message.payload.prefix(8).map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
            logger.debug("message \(request)", metadata: ["payload": "\(head)", "size": "\(message.payload.count)"])
        }
        let rule = VhostUserMessageRule.rule(for: request)
        if let error = check(message, request, rule) {
            refuse(message, error, reply: rule.reply)
            return
        }
        if rule.changesRings || request == .sendRarp {
            // Each costs every poll thread a pause (or an injected frame): budgeted.
            guard ringChangeBudget.take(now: MonotonicClock.nanoseconds()) else {
                close(reason: .tooManyRingChanges(perSecond: ringChangeBudget.perSecond))
                return
            }
        }
        if rule.changesRings {
            // The dataplane lets go of every ring before anything it uses can change.
            device.withdrawQueues()
            for ring in vrings { ring.dropQueue() }
        }
        let outcome = handle(request, &message)
        switch outcome {
        case .done:
            if rule.reply == .whenLogShmfdNegotiated && hasProtocolFeature(.logShmfd) {
                send(VhostUserMessage.reply(to: message.header.request, payload: []))
            } else {
                acknowledge(message, success: true)
            }
        case .reply(let payload):
            send(VhostUserMessage.reply(to: message.header.request, payload: payload))
        case .refused(let error):
            refuse(message, error, reply: rule.reply)
        }
        if rule.changesRings && !isClosed { publicationPending = true }
    }

    private func publishIfPending() {
        guard publicationPending else { return }
        publicationPending = false
        if !isClosed { updatePublication() }
    }

    private func hasProtocolFeature(_ feature: VhostUserProtocolFeature) -> Bool {
        (negotiatedProtocolFeatures ?? 0) & feature.mask != 0
    }

    /// The table's checks: support, protocol feature, payload size, fds, vring index.
    private func check(_ message: VhostUserMessage, _ request: VhostUserRequest, _ rule: VhostUserMessageRule) -> VhostUserProtocolError? {
        guard rule.supported else { return .unsupportedRequest(request) }
        if let feature = rule.requiredProtocolFeature, !hasProtocolFeature(feature) {
            return .protocolFeatureRequired(request, feature.name)
        }
        let size = message.payload.count
        switch rule.payload {
        case .exact(let expected) where size != expected:
            return .wrongPayloadSize(request, size: size, expected: "\(expected)")
        case .variable(let range) where !range.contains(size):
            return .wrongPayloadSize(request, size: size, expected: "\(range.lowerBound)...\(range.upperBound)")
        default:
            break
        }
        let fdCount = message.descriptors.count
        if message.descriptorsTruncated || fdCount > VhostUserLimits.maxDescriptorsPerMessage {
            return .tooManyDescriptors(request)
        }
        var reader = LittleEndianReader(message.payload)
        switch rule.descriptors {
        case .none where fdCount > 0:
            return .unexpectedDescriptors(request, count: fdCount)
        case .exactlyOne where fdCount == 0:
            return .missingDescriptor(request)
        case .exactlyOne where fdCount > 1, .optionalUnused where fdCount > 1:
            return .unexpectedDescriptors(request, count: fdCount)
        case .oneUnlessNoFdFlag:
            let word = reader.u64() ?? 0
            if word & VhostUserConnection.noFdFlag != 0 {
                if fdCount > 0 { return .descriptorWithNoFdFlag(request) }
            } else if fdCount == 0 {
                return .missingDescriptor(request)
            } else if fdCount > 1 {
                return .unexpectedDescriptors(request, count: fdCount)
            }
        case .onePerRegion:
            let regions = Int(reader.u32() ?? 0)
            if regions > VhostUserMessageRule.maxMemoryTableRegions {
                return .memoryTableRefused(request, "\(regions) regions, at most \(VhostUserMessageRule.maxMemoryTableRegions)")
            }
            if regions != fdCount { return .descriptorCountMismatch(request, descriptors: fdCount, regions: regions) }
        default:
            break
        }
        reader = LittleEndianReader(message.payload)
        switch rule.vringIndex {
        case .none:
            break
        case .stateIndex:
            let index = UInt64(reader.u32() ?? 0)
            if index >= UInt64(vrings.count) { return .vringIndexOutOfRange(request, index: index, count: vrings.count) }
        case .fileIndex:
            let word = reader.u64() ?? 0
            // vhost-user.rst: bits 0-7 the index, bit 8 NOFD; nothing else is defined.
            if word & ~(VhostUserConnection.noFdFlag | VhostUserConnection.fileIndexMask) != 0 {
                return .invalidPayload(request, "undefined bits set in the vring index word 0x\(String(word, radix: 16))")
            }
            let index = word & VhostUserConnection.fileIndexMask
            if index >= UInt64(vrings.count) { return .vringIndexOutOfRange(request, index: index, count: vrings.count) }
        }
        return nil
    }

    static let noFdFlag: UInt64 = 1 << 8
    static let fileIndexMask: UInt64 = 0xff

    // MARK: Replies

    /// REPLY_ACK (vhost-user.rst "REPLY_ACK"): a u64, 0 for success, when asked for and negotiated.
    private func acknowledge(_ message: VhostUserMessage, success: Bool) {
        guard message.header.needsReply, hasProtocolFeature(.replyAck) else { return }
        send(VhostUserMessage.reply(to: message.header.request, payload: VhostUserMessage.u64Payload(success ? 0 : 1)))
    }

    private func refuse(_ message: VhostUserMessage, _ error: VhostUserProtocolError, reply: VhostUserMessageRule.Reply) {
        message.closeDescriptors()
        device.refusedRequests += 1
        device.lastError = error.description
        let expectsPayloadReply = reply == .always || (reply == .whenLogShmfdNegotiated && hasProtocolFeature(.logShmfd))
        if expectsPayloadReply {
            // The front-end waits for an answer we cannot give: end the session rather
            // than leave it hanging or hand it a made-up value.
            close(reason: error)
            return
        }
        report(error, closing: false)
        acknowledge(message, success: false)
    }

    /// Sends a whole reply without blocking. A reply that does not fit in the socket buffer
    /// means the front-end stopped reading: the session ends.
    private func send(_ bytes: [UInt8]) {
        guard !isClosed else { return }
        do {
            let sent = try UnixSocket.send(socket, bytes: bytes)
            if sent != bytes.count { close(reason: .replyWouldBlock) }
        } catch {
            close(reason: error.wouldBlock ? .replyWouldBlock : .socketError(error.description))
        }
    }

    private func report(_ error: VhostUserProtocolError, closing: Bool) {
        // Refusals are limited per session; session ends per device, so a front-end that
        // reconnects in a loop cannot flood the log either.
        let (allowed, suppressed) = closing ? device.sessionErrorLimiter.allow() : errorLimiter.allow()
        guard allowed else { return }
        var text = closing ? "session closed: \(error)" : "request refused: \(error)"
        if suppressed > 0 { text += " (\(suppressed) similar reports suppressed)" }
        logger.warning("\(text)")
        device.delegate.deviceReportedError(device, message: text)
    }

    // MARK: Handlers

    private func handle(_ request: VhostUserRequest, _ message: inout VhostUserMessage) -> Outcome {
        var payload = LittleEndianReader(message.payload)
        switch request {
        case .getFeatures:
            return .reply(VhostUserMessage.u64Payload(sessionOfferedFeatures))
        case .setFeatures:
            return setFeatures(payload.u64() ?? 0)
        case .setOwner:
            return .done
        case .resetOwner, .resetDevice:
            resetSession()
            return .done
        case .setMemTable:
            return setMemTable(message.payload, &message.descriptors)
        case .setLogBase:
            return setLogBase(size: payload.u64() ?? 0, offset: payload.u64() ?? 0, descriptor: message.descriptors[0])
        case .setLogFd:
            // Not needed with LOG_SHMFD; the fd is closed with the message.
            return .done
        case .setVringNum:
            return setVringNum(index: Int(payload.u32() ?? 0), size: payload.u32() ?? 0)
        case .setVringAddr:
            let index = Int(payload.u32() ?? 0)
            let addresses = VhostUserVring.Addresses(flags: payload.u32() ?? 0, descriptor: payload.u64() ?? 0,
                                                     used: payload.u64() ?? 0, avail: payload.u64() ?? 0, log: payload.u64() ?? 0)
            return setVringAddr(index: index, addresses)
        case .setVringBase:
            return setVringBase(index: Int(payload.u32() ?? 0), base: payload.u32() ?? 0)
        case .getVringBase:
            return getVringBase(index: Int(payload.u32() ?? 0))
        case .setVringKick, .setVringCall, .setVringErr:
            let word = payload.u64() ?? 0
            let descriptor = message.descriptors.isEmpty ? nil : message.descriptors.removeFirst()
            return setVringFile(request, index: Int(word & Self.fileIndexMask), descriptor: descriptor)
        case .getProtocolFeatures:
            guard sessionOfferedFeatures & VhostUserDevice.protocolFeaturesFeature != 0 else {
                return .refused(.invalidPayload(request, "PROTOCOL_FEATURES (bit 30) was not offered"))
            }
            return .reply(VhostUserMessage.u64Payload(VhostUserProtocolFeature.supportedMask))
        case .setProtocolFeatures:
            return setProtocolFeatures(payload.u64() ?? 0)
        case .getQueueNum:
            return .reply(VhostUserMessage.u64Payload(UInt64(device.configuration.maxQueuePairs)))
        case .setVringEnable:
            return setVringEnable(index: Int(payload.u32() ?? 0), value: payload.u32() ?? 0)
        case .sendRarp:
            let mac = payload.bytes(6) ?? []
            // The guest's own address: unicast (I/G bit clear) and not all zeros.
            guard mac.count == 6, mac[0] & 1 == 0, mac.contains(where: { $0 != 0 }) else {
                return .refused(.invalidPayload(request, "RARP MAC is not a unicast address"))
            }
            logger.info("front-end asks for a RARP announcement", metadata: ["mac": "\(mac.map { String($0, radix: 16) }.joined(separator: ":"))"])
            device.delegate.deviceRequestsAnnounce(device, mac: mac)
            return .done
        case .netSetMtu:
            let value = payload.u64() ?? 0
            guard VhostUserLimits.mtuRange.contains(value) else {
                return .refused(.invalidPayload(request, "MTU \(value) outside \(VhostUserLimits.mtuRange)"))
            }
            mtu = Int(value)
            device.delegate.deviceMTUChanged(device, mtu: Int(value))
            return .done
        case .getMaxMemSlots:
            return .reply(VhostUserMessage.u64Payload(UInt64(VhostUserLimits.maxMemorySlots)))
        case .addMemReg:
            _ = payload.u64()  // padding
            return addMemoryRegion(decodeRegion(&payload), descriptor: message.descriptors.removeFirst())
        case .remMemReg:
            _ = payload.u64()
            return removeMemoryRegion(decodeRegion(&payload))
        case .setStatus:
            let value = payload.u64() ?? 0
            guard value <= 0xff else { return .refused(.invalidPayload(request, "status 0x\(String(value, radix: 16)) above 0xff")) }
            let wasDriverOK = status & Self.statusDriverOK != 0
            status = UInt8(value)
            if wasDriverOK != (status & Self.statusDriverOK != 0) {
                logger.info(wasDriverOK ? "driver status: not ready" : "driver status: DRIVER_OK", metadata: ["status": "0x\(String(value, radix: 16))"])
            }
            return .done
        case .getStatus:
            return .reply(VhostUserMessage.u64Payload(UInt64(status)))
        case .setBackendRequestFd, .iotlbMessage, .setVringEndian, .getConfig, .setConfig, .createCryptoSession,
             .closeCryptoSession, .postcopyAdvise, .postcopyListen, .postcopyEnd, .getInflightFd, .setInflightFd,
             .gpuSetSocket, .vringKick, .getSharedObject, .setDeviceStateFd, .checkDeviceState:
            return .refused(.unsupportedRequest(request))
        }
    }

    /// Any ring started: the device runs, and only LOG_ALL may change (vhost-user.rst
    /// "Migration": dirty logging is switched with SET_FEATURES while rings run).
    private var isRunning: Bool { vrings.contains { $0.started } }

    private func setFeatures(_ requested: UInt64) -> Outcome {
        guard requested & ~sessionOfferedFeatures == 0 else {
            return .refused(.featuresNotOffered(requested: requested, offered: sessionOfferedFeatures))
        }
        let current = negotiatedFeatures ?? 0
        if isRunning && (requested ^ current) & ~VhostUserDevice.logAllFeature != 0 {
            return .refused(.featureChangeWhileRunning(from: current, to: requested))
        }
        negotiatedFeatures = requested
        if (requested ^ current) & VhostUserDevice.ringPackedFeature != 0 {
            // The ring layout changed: addresses set before mean the other layout's areas.
            revalidateRings(.setFeatures)
        }
        let wasLogging = current & VhostUserDevice.logAllFeature != 0
        let logging = requested & VhostUserDevice.logAllFeature != 0
        logger.info("features negotiated", metadata: ["features": "0x\(String(requested, radix: 16))"])
        device.delegate.featuresChanged(device, features: requested)
        if logging != wasLogging {
            if logging && dirtyLog == nil {
                logger.warning("LOG_ALL negotiated without a dirty log (SET_LOG_BASE): writes are not logged")
            }
            logger.info(logging ? "dirty logging started" : "dirty logging stopped")
            device.delegate.migrationStateChanged(device, event: logging ? .loggingStarted : .loggingStopped)
        }
        return .done
    }

    private func setProtocolFeatures(_ requested: UInt64) -> Outcome {
        guard sessionOfferedFeatures & VhostUserDevice.protocolFeaturesFeature != 0 else {
            return .refused(.invalidPayload(.setProtocolFeatures, "PROTOCOL_FEATURES (bit 30) was not offered"))
        }
        guard requested & ~VhostUserProtocolFeature.supportedMask == 0 else {
            return .refused(.invalidPayload(.setProtocolFeatures, "protocol features 0x\(String(requested, radix: 16)) include bits not offered"))
        }
        negotiatedProtocolFeatures = requested
        return .done
    }

    /// RESET_OWNER / RESET_DEVICE: back to the state after SET_OWNER; the protocol
    /// features stay (the front-end does not negotiate them again).
    private func resetSession() {
        device.sessionEnded(notify: false)
        for ring in vrings { ring.reset() }
        memory = nil
        memoryRegions = []
        dirtyLog = nil
        negotiatedFeatures = nil
        status = 0
        mtu = nil
        ringsStoppedReported = false
    }

    // MARK: Memory

    private func decodeRegion(_ reader: inout LittleEndianReader) -> GuestMemoryRegionDescriptor {
        GuestMemoryRegionDescriptor(guestPhysicalAddress: reader.u64() ?? 0, size: reader.u64() ?? 0,
                                    userspaceAddress: reader.u64() ?? 0, mmapOffset: reader.u64() ?? 0)
    }

    /// The checks that need no mapping: non-empty, nothing wraps around 2^64, and the backing
    /// file is a mappable file at least offset + size long (touching past its end is SIGBUS).
    private func validate(_ region: GuestMemoryRegionDescriptor, fd: FileDescriptor) -> String? {
        guard region.size > 0 else { return "region size 0" }
        let (_, gpaWraps) = region.guestPhysicalAddress.addingReportingOverflow(region.size)
        let (_, uvaWraps) = region.userspaceAddress.addingReportingOverflow(region.size)
        let (fileEnd, offsetWraps) = region.mmapOffset.addingReportingOverflow(region.size)
        guard !gpaWraps, !uvaWraps, !offsetWraps else { return "region \(describe(region)) wraps around 2^64" }
        guard (try? fd.isMappableFile()) == true else { return "region \(describe(region)): fd is not a mappable file" }
        guard let fileSize = try? fd.fileSize() else { return "region \(describe(region)): fstat failed" }
        guard fileSize >= fileEnd else { return "region \(describe(region)): backing file has \(fileSize) bytes, needs \(fileEnd)" }
        return nil
    }

    private func describe(_ region: GuestMemoryRegionDescriptor) -> String {
        "gpa 0x\(String(region.guestPhysicalAddress, radix: 16)) size 0x\(String(region.size, radix: 16)) uva 0x\(String(region.userspaceAddress, radix: 16)) offset 0x\(String(region.mmapOffset, radix: 16))"
    }

    private func mapRegion(_ region: GuestMemoryRegionDescriptor, fd: FileDescriptor, _ request: VhostUserRequest) -> Result<GuestMemoryRegion, VhostUserProtocolError> {
        if let problem = validate(region, fd: fd) { return .failure(.memoryTableRefused(request, problem)) }
        do {
            return .success(try GuestMemoryRegion.map(region, fd: fd, faultFlag: faultFlag))
        } catch {
            return .failure(.memoryTableRefused(request, "region \(describe(region)): \(error)"))
        }
    }

    private func setMemTable(_ payload: [UInt8], _ descriptors: inout [FileDescriptor]) -> Outcome {
        var reader = LittleEndianReader(payload)
        let count = Int(reader.u32() ?? 0)
        _ = reader.u32()  // padding
        guard count > 0 else { return .refused(.memoryTableRefused(.setMemTable, "no regions")) }
        let needed = VhostUserMessageRule.memoryTableHeaderSize + count * VhostUserMessageRule.memoryRegionSize
        guard payload.count >= needed else {
            return .refused(.wrongPayloadSize(.setMemTable, size: payload.count, expected: "at least \(needed) for \(count) regions"))
        }
        var mapped: [GuestMemoryRegion] = []
        for index in 0..<count {
            switch mapRegion(decodeRegion(&reader), fd: descriptors[index], .setMemTable) {
            case .success(let region): mapped.append(region)
            case .failure(let error): return .refused(error)
            }
        }
        return install(mapped, maxRegions: VhostUserMessageRule.maxMemoryTableRegions, .setMemTable)
    }

    private func addMemoryRegion(_ region: GuestMemoryRegionDescriptor, descriptor: FileDescriptor) -> Outcome {
        defer { descriptor.close() }
        guard memoryRegions.count < VhostUserLimits.maxMemorySlots else {
            return .refused(.memoryTableRefused(.addMemReg, "all \(VhostUserLimits.maxMemorySlots) memory slots in use"))
        }
        switch mapRegion(region, fd: descriptor, .addMemReg) {
        case .success(let mapped): return install(memoryRegions + [mapped], maxRegions: VhostUserLimits.maxMemorySlots, .addMemReg)
        case .failure(let error): return .refused(error)
        }
    }

    private func removeMemoryRegion(_ region: GuestMemoryRegionDescriptor) -> Outcome {
        guard let position = memoryRegions.firstIndex(where: {
            $0.descriptor.guestPhysicalAddress == region.guestPhysicalAddress && $0.descriptor.size == region.size
                && $0.descriptor.userspaceAddress == region.userspaceAddress
        }) else {
            return .refused(.memoryTableRefused(.remMemReg, "no region \(describe(region))"))
        }
        var remaining = memoryRegions
        remaining.remove(at: position)
        if remaining.isEmpty {
            memory = nil
            memoryRegions = []
            revalidateRings(.remMemReg)
            return .done
        }
        return install(remaining, maxRegions: VhostUserLimits.maxMemorySlots, .remMemReg)
    }

    /// Replaces the memory table (the queues were withdrawn by the dispatcher). Rings keep
    /// their indices and are re-validated against the new table.
    private func install(_ regions: [GuestMemoryRegion], maxRegions: Int, _ request: VhostUserRequest) -> Outcome {
        let mapped = regions.reduce(UInt64(0)) { $0 + UInt64($1.mapping.length) }
        guard mapped <= VhostUserLimits.maxMappedGuestMemory else {
            return .refused(.memoryTableRefused(request, "\(mapped) bytes mapped in all, at most \(VhostUserLimits.maxMappedGuestMemory) per session"))
        }
        let table: GuestMemory
        do {
            table = try GuestMemory(regions: regions, maxRegions: maxRegions)
        } catch {
            return .refused(.memoryTableRefused(request, "\(error)"))
        }
        memory = table
        memoryRegions = regions
        logger.info("memory table set", metadata: ["regions": "\(regions.map { describe($0.descriptor) })"])
        revalidateRings(.setMemTable)
        return .done
    }

    /// After a memory change: a ring whose addresses are no longer inside guest memory is
    /// not used until the front-end sends new ones.
    private func revalidateRings(_ request: VhostUserRequest) {
        for ring in vrings {
            guard let addresses = ring.addresses, let size = ring.size else { continue }
            switch mapLayout(size: size, addresses, request) {
            case .success(let layout):
                // The old layout points into the old mappings, which go away with the old table.
                ring.layout = layout
            case .failure(let error):
                ring.addresses = nil
                ring.layout = nil
                report(.ringNotConfigured(request, "vring \(ring.index) addresses no longer mapped: \(error)"), closing: false)
            }
        }
    }


    /// SET_LOG_BASE: the dirty-page bitmap, one bit per 4 KiB guest page (vhost-user.rst
    /// "Migration"), mapped from the fd at `offset`.
    private func setLogBase(size: UInt64, offset: UInt64, descriptor: FileDescriptor) -> Outcome {
        let (end, overflow) = offset.addingReportingOverflow(size)
        guard !overflow else { return .refused(.dirtyLogRefused("offset 0x\(String(offset, radix: 16)) + size 0x\(String(size, radix: 16)) overflows")) }
        guard size > 0, size <= VhostUserLimits.maxDirtyLogSize else { return .refused(.dirtyLogRefused("size \(size) outside 1...\(VhostUserLimits.maxDirtyLogSize)")) }
        guard let memory else { return .refused(.noMemoryTable(.setLogBase)) }
        // One bit per 4 KiB page up to the last guest-physical byte.
        let needed = memory.highestGuestPhysicalAddress / 4096 / 8 + 1
        guard size >= needed else { return .refused(.dirtyLogRefused("size \(size) too small for guest memory (needs \(needed))")) }
        guard (try? descriptor.isMappableFile()) == true else { return .refused(.dirtyLogRefused("fd is not a mappable file")) }
        guard let fileSize = try? descriptor.fileSize(), fileSize >= end else { return .refused(.dirtyLogRefused("backing file shorter than offset + size")) }
        let pageOffset = offset & ~UInt64(4095)
        let delta = Int(offset - pageOffset)
        let mapping: MemoryMapping
        do {
            mapping = try MemoryMapping(descriptor: descriptor, length: delta + Int(size), offset: pageOffset,
                                        guarding: descriptor.isSealedAgainstShrinking ? nil : faultFlag)
        } catch {
            return .refused(.dirtyLogRefused("mmap: \(error)"))
        }
        do {
            dirtyLog = try DirtyLog(mapping: mapping, offset: UInt64(delta), size: size)
        } catch {
            return .refused(.dirtyLogRefused("\(error)"))
        }
        logger.info("dirty log set", metadata: ["size": "\(size)"])
        return .done
    }

    // MARK: Rings

    /// RING_PACKED negotiated: rings use the packed layout (VIRTIO 1.1 2.8).
    private var ringsArePacked: Bool { (negotiatedFeatures ?? 0) & VhostUserDevice.ringPackedFeature != 0 }

    private func mapLayout(size: Int, _ addresses: VhostUserVring.Addresses, _ request: VhostUserRequest) -> Result<MappedVirtqueueLayout, VhostUserProtocolError> {
        guard let memory else { return .failure(.noMemoryTable(request)) }
        if ringsArePacked {
            do {
                let layout = try PackedVirtqueueLayout.map(size: size, descriptorAddress: addresses.descriptor,
                                                           driverEventAddress: addresses.avail, deviceEventAddress: addresses.used,
                                                           logRing: addresses.logUsed, memory: memory)
                return .success(.packed(layout))
            } catch {
                return .failure(.ringNotConfigured(request, "packed ring addresses not in guest memory: \(error)"))
            }
        }
        guard size & (size - 1) == 0 else {
            return .failure(.ringNotConfigured(request, "split ring size \(size) is not a power of two"))
        }
        do {
            let layout = try VirtqueueLayout.map(size: size, descriptorAddress: addresses.descriptor, availAddress: addresses.avail,
                                                 usedAddress: addresses.used, logGuestAddress: addresses.logUsed ? addresses.log : nil,
                                                 memory: memory)
            return .success(.split(layout))
        } catch {
            return .failure(.ringNotConfigured(request, "addresses not in guest memory: \(error)"))
        }
    }

    private func setVringNum(index: Int, size: UInt32) -> Outcome {
        // Split rings are a power of two (2.7); packed rings any size up to 32768 (2.8).
        guard size >= 1, size <= UInt32(VhostUserLimits.maxRingSize), ringsArePacked || size & (size - 1) == 0 else {
            return .refused(.invalidPayload(.setVringNum, "ring size \(size) is not a power of two in 1...\(VhostUserLimits.maxRingSize)"))
        }
        let ring = vrings[index]
        if let addresses = ring.addresses {
            switch mapLayout(size: Int(size), addresses, .setVringNum) {
            case .success(let layout): ring.layout = layout
            case .failure(let error): return .refused(error)
            }
        }
        ring.size = Int(size)
        ring.touched = true
        return .done
    }

    private func setVringAddr(index: Int, _ addresses: VhostUserVring.Addresses) -> Outcome {
        guard addresses.flags & ~UInt32(1) == 0 else {
            return .refused(.invalidPayload(.setVringAddr, "undefined flags 0x\(String(addresses.flags, radix: 16))"))
        }
        guard memory != nil else { return .refused(.noMemoryTable(.setVringAddr)) }
        let ring = vrings[index]
        guard let size = ring.size else { return .refused(.ringNotConfigured(.setVringAddr, "vring \(index) has no size (SET_VRING_NUM)")) }
        switch mapLayout(size: size, addresses, .setVringAddr) {
        case .success(let layout):
            ring.layout = layout
            ring.addresses = addresses
            ring.touched = true
            return .done
        case .failure(let error):
            return .refused(error)
        }
    }

    private func setVringBase(index: Int, base: UInt32) -> Outcome {
        // Split rings: a 16-bit index. Packed rings (like DPDK): bits 0-14 the avail index,
        // bit 15 the avail wrap counter; the used position starts equal. QEMU puts its used
        // position in bits 16-31: nothing is in flight at a stop, so it is the same one.
        guard ringsArePacked || base <= 0xffff else { return .refused(.invalidPayload(.setVringBase, "base \(base) above 0xffff")) }
        let ring = vrings[index]
        if ringsArePacked, let size = ring.size, Int(base & 0x7fff) >= size {
            return .refused(.invalidPayload(.setVringBase, "packed ring index \(base & 0x7fff) outside a ring of \(size)"))
        }
        ring.position = VirtqueuePosition(base: UInt16(truncatingIfNeeded: base))
        ring.touched = true
        return .done
    }

    /// GET_VRING_BASE stops the ring (vhost-user.rst "Starting and stopping rings") and
    /// returns where to resume.
    private func getVringBase(index: Int) -> Outcome {
        let ring = vrings[index]
        let wasStarted = ring.started
        ring.started = false
        ring.kick?.close()
        ring.kick = nil
        ring.kickPolled = false
        if wasStarted && !ringsStoppedReported {
            ringsStoppedReported = true
            logger.info("rings stopped")
            device.delegate.migrationStateChanged(device, event: .ringsStopped)
        }
        var recent = ""
        if logger.logLevel <= .debug, let observer = observer(ring) {
            recent = observer.describeRecentEntries(count: 12)
        }
        logger.debug("vring \(index) stopped", metadata: ["base": "\(ring.position.base)", "ring": "\(recent)"])
        var writer = LittleEndianWriter()
        writer.u32(UInt32(index))
        if ringsArePacked {
            // QEMU reads bits 16-31 as its used position (DPDK's back-end leaves them 0).
            let base = ring.position.packedBase
            writer.u32(UInt32(base) | UInt32(ring.position.usedBase ?? base) << 16)
        } else {
            writer.u32(UInt32(ring.position.base))
        }
        return .reply(writer.bytes)
    }

    private func setVringFile(_ request: VhostUserRequest, index: Int, descriptor: FileDescriptor?) -> Outcome {
        let ring = vrings[index]
        switch request {
        case .setVringKick:
            guard ring.size != nil, ring.addresses != nil else {
                descriptor?.close()
                return .refused(.ringNotConfigured(.setVringKick, "vring \(index) has no size or addresses yet"))
            }
            ring.kick?.close()
            ring.kick = descriptor
            ring.kickPolled = descriptor == nil
            ring.started = true
            ring.touched = true
            ringsStoppedReported = false
        case .setVringCall:
            ring.call?.close()
            ring.call = descriptor
            ring.touched = true
        default:
            ring.err?.close()
            ring.err = descriptor
        }
        return .done
    }

    private func setVringEnable(index: Int, value: UInt32) -> Outcome {
        guard value <= 1 else { return .refused(.invalidPayload(.setVringEnable, "enable value \(value) is not 0 or 1")) }
        let ring = vrings[index]
        ring.explicitlyEnabled = value == 1
        ring.touched = true
        device.delegate.vringStateChanged(device, vringIndex: index, enabled: value == 1)
        return .done
    }

    // MARK: Publication

    private var protocolFeaturesNegotiated: Bool {
        (negotiatedFeatures ?? 0) & VhostUserDevice.protocolFeaturesFeature != 0
    }

    private var dirtyLoggingActive: Bool {
        (negotiatedFeatures ?? 0) & VhostUserDevice.logAllFeature != 0 && dirtyLog != nil
    }

    /// VIRTIO status bit DRIVER_OK (VIRTIO 1.1 2.1).
    static let statusDriverOK: UInt8 = 4

    /// With the STATUS protocol feature the front-end says when the driver is ready; until
    /// DRIVER_OK (and from the moment it is cleared, as QEMU does before GET_VRING_BASE) the
    /// rings are not ours to use (VIRTIO 1.1 3.1.1). DPDK's back-end waits for it the same way.
    /// Without STATUS, ring readiness alone decides.
    private var driverAllowsRings: Bool {
        !hasProtocolFeature(.status) || status & Self.statusDriverOK != 0
    }

    /// The ready rule: memory is mapped, the driver is ready (see `driverAllowsRings`), the
    /// first queue pair is enabled, and every enabled ring the front-end has touched has a
    /// size, addresses inside guest memory and a kick (or NOFD). Then every enabled ring is
    /// published; disabled rings never are.
    private func updatePublication() {
        guard let memory, driverAllowsRings else {
            device.publish(nil)
            return
        }
        let protocolFeatures = protocolFeaturesNegotiated
        var queues: [ActiveQueue] = []
        for ring in vrings where ring.isEnabled(protocolFeaturesNegotiated: protocolFeatures) {
            guard ring.touched || ring.index < 2 else { continue }
            guard ring.isStartable, let layout = ring.layout else {
                device.publish(nil)
                return
            }
            let queue = ring.queue ?? makeQueue(ring, layout, memory: memory)
            ring.queue = queue
            queues.append(ActiveQueue(vringIndex: ring.index, queue: queue, kickDescriptor: ring.kick?.rawValue ?? -1))
        }
        let firstPairReady = queues.count >= 2 && queues[0].vringIndex == 0 && queues[1].vringIndex == 1
        device.publish(firstPairReady ? queues : nil)
    }

    private func queueBuilder(_ ring: VhostUserVring, memory: GuestMemory) -> VirtqueueBuilder {
        VirtqueueBuilder(memory: memory, negotiatedFeatures: negotiatedFeatures ?? 0, callDescriptor: ring.call?.rawValue ?? -1,
                         statistics: ring.statistics, dirtyLog: dirtyLoggingActive ? dirtyLog : nil, faultFlag: faultFlag)
    }

    /// A fresh queue for `ring`, from where it stands (`VirtqueueBuilder.make` says where a
    /// split ring resumes when the base disagrees with guest memory).
    private func makeQueue(_ ring: VhostUserVring, _ layout: MappedVirtqueueLayout, memory: GuestMemory) -> Virtqueue {
        let requested = ring.position
        let (queue, position) = queueBuilder(ring, memory: memory).make(layout, at: requested)
        ring.position = position
        switch queue {
        case .split(let split):
            if let usedBase = requested.usedBase {
                logger.debug("vring \(ring.index) queue rebuilt", metadata: [
                    "base": "\(requested.base)", "used_base": "\(usedBase)", "used_idx": "\(split.currentUsedIndex())",
                    "avail_idx": "\(split.currentAvailIndex())", "log_used": "\(split.logsUsedRing)"])
            } else {
                logger.debug("vring \(ring.index) queue built", metadata: [
                    "base": "\(requested.base)", "used_idx": "\(split.currentUsedIndex())", "avail_idx": "\(split.currentAvailIndex())",
                    "log_used": "\(split.logsUsedRing)", "ring": "\(split.describeRecentEntries(count: 12))"])
                if position.base != requested.base {
                    logger.warning("vring \(ring.index): base \(requested.base) but used index \(position.base) in guest memory; resuming from \(position.base)")
                }
            }
        case .packed(let packed):
            if packed.isBroken { logger.warning("vring \(ring.index): packed base 0x\(String(requested.base, radix: 16)) outside the ring") }
        }
        return queue
    }

    /// A read-only view of a split ring's indices in guest memory; never published.
    func observer(_ ring: VhostUserVring) -> SplitVirtqueue? {
        guard let memory, let layout = ring.layout?.split else { return nil }
        return queueBuilder(ring, memory: memory).observer(layout, at: ring.position.base)
    }

    // MARK: Snapshot

    func fill(_ info: inout VhostUserDeviceInfo) {
        info.negotiatedFeatures = negotiatedFeatures
        info.negotiatedProtocolFeatures = negotiatedProtocolFeatures
        info.mtu = mtu
        info.status = status
        info.memoryRegions = memoryRegions.map(\.descriptor)
        info.dirtyLogging = dirtyLoggingActive
        let protocolFeatures = protocolFeaturesNegotiated
        info.vrings = vrings.filter(\.touched).map { ring in
            if ring.layout?.packed != nil || ring.queue?.layout == .packed {
                return packedInfo(ring, protocolFeatures: protocolFeatures)
            }
            let current = ring.queue?.split ?? observer(ring)
            // A published queue's own indices belong to its poll thread. Nothing stays in
            // flight between bursts, so the used.idx it last released (read atomically from
            // guest memory) is its last avail and used index.
            let published = ring.queue != nil
            let currentUsed = current?.currentUsedIndex()
            let base = ring.position.base
            return vringInfo(ring, protocolFeatures: protocolFeatures, lastAvailIndex: published ? (currentUsed ?? base) : base,
                             lastUsedIndex: published ? currentUsed : nil,
                             currentAvailIndex: current?.currentAvailIndex(), currentUsedIndex: currentUsed)
        }
        info.activeQueuePairs = Set(vrings.filter(\.touched).map { $0.index / 2 }).count
    }

    /// A packed ring has no avail or used index in guest memory: show the position the
    /// poll thread last published (or the base), with its wrap counter.
    private func packedInfo(_ ring: VhostUserVring, protocolFeatures: Bool) -> VhostUserVringInfo {
        let position = ring.queue?.packed?.publishedPosition.load(ordering: .relaxed) ?? ring.position.base
        let (index, wrap) = PackedVirtqueue.decodeBase(position)
        var info = vringInfo(ring, protocolFeatures: protocolFeatures, lastAvailIndex: index,
                             lastUsedIndex: ring.queue != nil ? index : nil, currentAvailIndex: nil, currentUsedIndex: nil)
        info.ringLayout = .packed
        info.wrapCounter = wrap
        return info
    }

    private func vringInfo(_ ring: VhostUserVring, protocolFeatures: Bool, lastAvailIndex: UInt16, lastUsedIndex: UInt16?,
                           currentAvailIndex: UInt16?, currentUsedIndex: UInt16?) -> VhostUserVringInfo {
        VhostUserVringInfo(
            index: ring.index, size: ring.size, enabled: ring.isEnabled(protocolFeaturesNegotiated: protocolFeatures),
            started: ring.started, descriptorAddress: ring.addresses?.descriptor, availAddress: ring.addresses?.avail,
            usedAddress: ring.addresses?.used, logAddress: ring.addresses?.log, logUsed: ring.addresses?.logUsed ?? false,
            lastAvailIndex: lastAvailIndex, lastUsedIndex: lastUsedIndex,
            currentAvailIndex: currentAvailIndex, currentUsedIndex: currentUsedIndex,
            hasKick: ring.kick != nil, kickPolled: ring.kickPolled, hasCall: ring.call != nil, statistics: ring.statistics)
    }
}
