import Dataplane
import VhostSystem
import VhostUser

/// A vhost-user device handed over by the previous process, with the fds it names.
struct HandedOverDevice {
    let export: VhostUserDeviceExport
    let descriptors: VhostUserHandoverDescriptors
}

/// What the ports are, for a live hand-over: the specs, the vhost-user devices (with their fds)
/// and the learned MACs by port name.
public struct PortHandover: @unchecked Sendable {
    public var specs: [PortSpec]
    public var vhostUser: VhostUserHandover
    public var macTable: [(mac: UInt64, segment: Int, port: String)]
}

/// Live hand-over, both sides. Old process: `handOver` holds every change (create, delete,
/// features, policy), takes the kernel ports' sockets and every vhost-user queue out of the
/// poll threads, and runs the transfer; if it fails, all is put back. New process: `adopt`
/// makes each port from its spec with its device as it was; `learn` refills the MAC table.
extension PortService {
    /// Returns whether the new process committed (then nothing is put back: this process exits).
    public func handOver(_ transfer: @escaping @Sendable (PortHandover) -> Bool) -> Bool {
        changes.withLock { _ in
            let current = allPorts
            let kernelPorts = current.filter { $0.packetPort != nil }
            for port in kernelPorts { fabric.setPacketPort(portID: port.id, port: nil) }
            let specs = current.map(\.spec)
            let names = Dictionary(uniqueKeysWithValues: current.map { ($0.id, $0.spec.name) })
            let committed = controlLoop.handOver { [fabric] vhostUser in
                // The queues are out of the poll threads now: the table no longer changes.
                let macTable = fabric.fdb.entries(now: Self.nowSeconds()).compactMap { entry in
                    names[entry.port].map { (mac: entry.mac, segment: entry.segment, port: $0) }
                }
                return transfer(PortHandover(specs: specs, vhostUser: vhostUser, macTable: macTable))
            }
            if !committed {
                for port in kernelPorts { fabric.setPacketPort(portID: port.id, port: port.packetPort) }
            }
            return committed
        }
    }

    /// Makes a port handed over by the previous process: a kernel port opens its own socket;
    /// a vhost-user port takes its listener and session from `descriptors` (validated as a
    /// front-end's requests). Observers are not told: the saved state already has it.
    public func adopt(_ spec: PortSpec, device: VhostUserDeviceExport?, descriptors: VhostUserHandoverDescriptors) throws(PortError) {
        try changes.withLock { _ throws(PortError) in
            switch (spec.kind, device) {
            case (.vhostUser, let device?):
                _ = try makePort(spec, adopting: HandedOverDevice(export: device, descriptors: descriptors))
            case (.afPacket, nil):
                _ = try makePort(spec)
            default:
                throw PortError(.invalid, "port \(spec.name): a vhost-user port needs its device, a kernel port has none")
            }
        }
    }

    /// Learns the handed-over MACs on their ports (by name: ids may differ in this process).
    public func learn(_ entries: [(mac: UInt64, segment: Int, port: String)]) {
        let ids = ports.withLock { ports in Dictionary(uniqueKeysWithValues: ports.values.map { ($0.spec.name, $0.id) }) }
        let now = Self.nowSeconds()
        for entry in entries {
            guard let id = ids[entry.port] else { continue }
            _ = fabric.fdb.learn(entry.mac, segment: entry.segment, port: id, now: now)
        }
    }
}
