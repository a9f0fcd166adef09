import VhostUser

/// A vhost-user port's feature sets (GET /features): what the switch supports, what the
/// socket offers and what the current session negotiated.
public struct FeaturesView: Sendable {
    public var supported: UInt64
    public var offered: UInt64
    public var negotiated: UInt64?
    public var offeredProtocol: UInt64
    public var negotiatedProtocol: UInt64?
}

/// The outcome of a change of the offered features.
public struct FeatureUpdate: Sendable {
    public var features: FeaturesView
    /// False while a session runs with the features it negotiated: the new offer applies
    /// from the next session.
    public var appliesNow: Bool
}
