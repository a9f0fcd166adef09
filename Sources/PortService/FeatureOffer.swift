import Dataplane
import VhostUser
import Virtio

/// The one place where feature names, bits and masks become an offered mask: a port's spec
/// at creation (its mask or the default, then its enable/disable lists), PUT /features (a
/// whole mask) and PATCH /features (names on top of the current offer) all end here, and
/// so do the rules (a name must be known; the result must lie within what the switch
/// supports).
public enum FeatureOffer {
    public enum Problem: Error, Equatable, CustomStringConvertible {
        case unknownFeature(String)
        /// The bits of the requested mask the switch does not support.
        case unsupported(UInt64)

        public var description: String {
            switch self {
            case .unknownFeature(let name): "unknown feature \"\(name)\""
            case .unsupported(let bits):
                "features \(FeatureNames.names(of: bits).joined(separator: ", ")) (0x\(String(bits, radix: 16))) are not supported by this switch"
            }
        }
    }

    /// A change of a port's offer, as requested.
    public enum Change: Sendable, Equatable {
        /// Offer exactly this mask.
        case mask(UInt64)
        /// Enable then disable these names, starting from the current offer.
        case names(enable: [String], disable: [String])
    }

    public static var supported: UInt64 { VhostUserDevice.supportedFeatures }

    /// `base` with the names in `enable` set and those in `disable` cleared, checked. `enable`
    /// names supported features only (as the API's `SupportedFeatureName`), even one that
    /// `disable` clears again.
    public static func resolve(_ base: UInt64, enable: [String] = [], disable: [String] = []) throws(Problem) -> UInt64 {
        let enabled: UInt64, disabled: UInt64
        do {
            enabled = try FeatureNames.mask(of: enable)
            disabled = try FeatureNames.mask(of: disable)
        } catch {
            throw .unknownFeature(error.name)
        }
        let mask = (base | enabled) & ~disabled
        let unsupported = (mask | enabled) & ~supported
        if unsupported != 0 { throw .unsupported(unsupported) }
        return mask
    }

    /// The mask a vhost-user spec offers: its mask or the default, then its lists.
    public static func mask(for spec: PortSpec.VhostUser) throws(Problem) -> UInt64 {
        try resolve(spec.featureMask ?? VhostUserDevice.defaultOfferedFeatures, enable: spec.enableFeatures, disable: spec.disableFeatures)
    }

    /// The mask `change` makes of the current offer.
    public static func apply(_ change: Change, to current: UInt64) throws(Problem) -> UInt64 {
        switch change {
        case .mask(let mask): try resolve(mask)
        case .names(let enable, let disable): try resolve(current, enable: enable, disable: disable)
        }
    }
}
