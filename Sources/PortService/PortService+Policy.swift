import Dataplane

extension PortService {
    /// Changes a port's segment and port-security settings (PATCH /v1/ports/{name}), for
    /// either port type, without touching its device or socket: `change` turns the current
    /// policy (and the port's kind, for its defaults) into the new one, with the change lock held (two PATCHes never lose each
    /// other's keys). A refused change (`change` throws, or the result breaks a rule) leaves
    /// everything as it was. When something changed, the port's spec and the switch get the
    /// new policy together, a `port.updated` event names the changed keys and observers
    /// (persistence) are told.
    public func changePolicy(port name: String,
                             _ change: (PortPolicy, PortSpec.Kind) throws(PortError) -> PortPolicy) throws(PortError) -> PortView {
        try changes.withLock { _ throws(PortError) -> PortView in
            guard var port = ports.withLock({ $0[name] }) else { throw PortError(.notFound, "no port named \"\(name)\"") }
            let policy = try change(port.spec.policy, port.spec.kind)
            var changedSpec = port.spec
            changedSpec.policy = policy
            if let problem = changedSpec.policyProblem(pollThreads: fabric.pollThreadCount) {
                throw PortError(.invalid, problem)
            }
            let fields = PortPolicyField.changed(from: port.spec.policy, to: policy)
            if !fields.isEmpty {
                port.spec.policy = policy
                ports.withLock { $0[name]?.spec.policy = policy }
                fabric.setPolicy(portID: port.id, policy)
                let names = fields.map(\.rawValue).joined(separator: ",")
                logger.info("port policy changed", metadata: ["port": "\(name)", "changed": "\(names)"])
                emit(SwitchEvent(.portUpdated, port: name, data: ["changed": .string(names)]))
                changed(.saved(port.spec))
            }
            return view(of: port)
        }
    }
}
