/// A registry of feature bits (`VirtioNetFeature`, `VhostUserProtocolFeature`): each case's
/// raw value is its bit number and `name` its name in the spec's lists. The lookups both
/// registries need are written once here.
public protocol FeatureBit: RawRepresentable<Int>, CaseIterable, Sendable {
    var name: String { get }
}

extension FeatureBit {
    @inlinable
    public var mask: UInt64 { 1 << UInt64(rawValue) }

    /// True when `mask` has this feature's bit set.
    @inlinable
    public func isSet(in mask: UInt64) -> Bool { mask & self.mask != 0 }

    /// The feature called `name` (exactly), if any.
    public init?(name: String) {
        guard let match = Self.allCases.first(where: { $0.name == name }) else { return nil }
        self = match
    }

    /// The names of the known features set in `mask`, in declaration order.
    public static func names(of mask: UInt64) -> [String] {
        allCases.filter { $0.isSet(in: mask) }.map(\.name)
    }
}
