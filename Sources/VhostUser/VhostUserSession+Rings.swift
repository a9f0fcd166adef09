import VhostSystem
import Virtio

/// Ring set-up: size, addresses, position, kick/call/err fds and enabling (vhost-user.rst
/// "Ring states"). Every ring-changing request's queues were withdrawn by the dispatcher.
extension VhostUserSession {
    /// Split rings are a power of two (2.7); packed rings any size up to 32768 (2.8).
    func setVringNum(_ payload: VringNum) throws(VhostUserProtocolError) -> VhostUserResponse {
        let size = payload.ringSize
        guard ringsArePacked || size & (size - 1) == 0 else { throw VringNum.refusal(payload.num, .setVringNum) }
        let ring = vrings[payload.index]
        if let addresses = ring.addresses {
            ring.layout = try mapLayout(size: size, addresses, .setVringNum)
        }
        ring.size = size
        ring.touched = true
        return .done
    }

    /// The row requires a memory table: the addresses are translated through it now.
    func setVringAddr(_ payload: VringAddress) throws(VhostUserProtocolError) -> VhostUserResponse {
        let ring = vrings[payload.index]
        guard let size = ring.size else {
            throw .ringNotConfigured(.setVringAddr, "vring \(payload.index) has no size (SET_VRING_NUM)")
        }
        ring.layout = try mapLayout(size: size, payload.addresses, .setVringAddr)
        ring.addresses = payload.addresses
        ring.touched = true
        return .done
    }

    func setVringBase(_ payload: VringState) throws(VhostUserProtocolError) -> VhostUserResponse {
        // Split rings: a 16-bit index. Packed rings (like DPDK): bits 0-14 the avail index,
        // bit 15 the avail wrap counter; the used position starts equal. QEMU puts its used
        // position in bits 16-31: nothing is in flight at a stop, so it is the same one.
        let base = payload.num
        guard ringsArePacked || base <= 0xffff else { throw .invalidPayload(.setVringBase, "base \(base) above 0xffff") }
        let ring = vrings[payload.index]
        if ringsArePacked, let size = ring.size, Int(base & 0x7fff) >= size {
            throw .invalidPayload(.setVringBase, "packed ring index \(base & 0x7fff) outside a ring of \(size)")
        }
        ring.position = VirtqueuePosition(base: UInt16(truncatingIfNeeded: base))
        ring.touched = true
        return .done
    }

    /// GET_VRING_BASE stops the ring (vhost-user.rst "Starting and stopping rings") and
    /// returns where to resume.
    func getVringBase(_ payload: VringState) -> VhostUserResponse {
        let index = payload.index
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

    func setVringKick(_ payload: VringFile) throws(VhostUserProtocolError) -> VhostUserResponse {
        let ring = vrings[payload.index]
        guard ring.size != nil, ring.addresses != nil else {
            throw .ringNotConfigured(.setVringKick, "vring \(payload.index) has no size or addresses yet")
        }
        ring.kick?.close()
        ring.kick = payload.descriptor
        ring.kickPolled = payload.descriptor == nil
        ring.started = true
        ring.touched = true
        ringsStoppedReported = false
        return .done
    }

    func setVringCall(_ payload: VringFile) -> VhostUserResponse {
        let ring = vrings[payload.index]
        ring.call?.close()
        ring.call = payload.descriptor
        ring.touched = true
        return .done
    }

    func setVringErr(_ payload: VringFile) -> VhostUserResponse {
        let ring = vrings[payload.index]
        ring.err?.close()
        ring.err = payload.descriptor
        return .done
    }

    func setVringEnable(_ payload: VringEnable) -> VhostUserResponse {
        let ring = vrings[payload.index]
        ring.explicitlyEnabled = payload.enabled
        ring.touched = true
        device.delegate.vringStateChanged(device, vringIndex: payload.index, enabled: payload.enabled)
        return .done
    }

    // MARK: Layouts

    /// Translates a ring's addresses through the memory table, in the layout the features
    /// negotiated so far choose.
    func mapLayout(size: Int, _ addresses: VringAddresses, _ request: VhostUserRequest) throws(VhostUserProtocolError) -> MappedVirtqueueLayout {
        guard let memory else { throw .noMemoryTable(request) }
        if ringsArePacked {
            do {
                return .packed(try PackedVirtqueueLayout.map(size: size, descriptorAddress: addresses.descriptor,
                                                             driverEventAddress: addresses.avail, deviceEventAddress: addresses.used,
                                                             logRing: addresses.logUsed, memory: memory))
            } catch {
                throw .ringNotConfigured(request, "packed ring addresses not in guest memory: \(error)")
            }
        }
        guard size & (size - 1) == 0 else {
            throw .ringNotConfigured(request, "split ring size \(size) is not a power of two")
        }
        do {
            return .split(try VirtqueueLayout.map(size: size, descriptorAddress: addresses.descriptor, availAddress: addresses.avail,
                                                  usedAddress: addresses.used, logGuestAddress: addresses.logUsed ? addresses.log : nil,
                                                  memory: memory))
        } catch {
            throw .ringNotConfigured(request, "addresses not in guest memory: \(error)")
        }
    }

    /// After a memory or layout change: a ring whose addresses are no longer inside guest
    /// memory is not used until the front-end sends new ones.
    func revalidateRings(_ request: VhostUserRequest) {
        for ring in vrings {
            guard let addresses = ring.addresses, let size = ring.size else { continue }
            do {
                // The old layout points into the old mappings, which go away with the old table.
                ring.layout = try mapLayout(size: size, addresses, request)
            } catch {
                ring.addresses = nil
                ring.layout = nil
                report(.ringNotConfigured(request, "vring \(ring.index) addresses no longer mapped: \(error)"), closing: false)
            }
        }
    }
}
