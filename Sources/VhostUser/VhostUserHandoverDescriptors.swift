import VhostSystem

/// The fds a hand-over brought, taken by index as the state document names them. An index
/// outside the list or named twice is refused (two owners of one fd would close it twice);
/// whatever is not taken is closed by `closeRemaining`.
public final class VhostUserHandoverDescriptors: @unchecked Sendable {
    private var slots: [FileDescriptor?]

    public init(_ descriptors: [FileDescriptor]) { slots = descriptors }

    public var count: Int { slots.count }

    public func take(_ index: Int, for what: String) throws(VhostUserProtocolError) -> FileDescriptor {
        guard slots.indices.contains(index) else {
            throw .handoverRefused("\(what): fd index \(index) outside the \(slots.count) fds received")
        }
        guard let descriptor = slots[index] else { throw .handoverRefused("\(what): fd index \(index) named twice") }
        slots[index] = nil
        return descriptor
    }

    public func closeRemaining() {
        for case let descriptor? in slots { descriptor.close() }
        slots = slots.map { _ in nil }
    }
}
