import Dataplane
import VhostUser
import Virtio

extension PortService {
    public enum FeatureChangeError: Error, Equatable {
        case lookup(PortLookupError)
        case invalid(FeatureOffer.Problem)
    }

    /// Changes a vhost-user port's offered features: the device's offer and the port's spec
    /// change together (one source of truth), then, when the mask changed, a
    /// `features.changed` event is emitted and observers (persistence) are told.
    public func changeOfferedFeatures(port name: String, _ change: FeatureOffer.Change) throws(FeatureChangeError) -> FeatureUpdate {
        try changes.withLock { _ throws(FeatureChangeError) -> FeatureUpdate in
            let found: (port: Port, device: VhostUserDevice)
            do throws(PortLookupError) { found = try vhostUserPort(name) } catch { throw .lookup(error) }
            let (port, device) = found
            let before = device.offeredFeatures
            let mask: UInt64
            do throws(FeatureOffer.Problem) { mask = try FeatureOffer.apply(change, to: before) } catch { throw .invalid(error) }
            do throws(VhostUserConfigurationError) { try device.setOfferedFeatures(mask) } catch {
                throw .invalid(.unsupported(mask & ~FeatureOffer.supported))
            }
            if case .vhostUser(var vhost) = port.spec.kind {
                vhost.featureMask = mask
                vhost.enableFeatures = []
                vhost.disableFeatures = []
                ports.withLock { $0[name]?.spec.kind = .vhostUser(vhost) }
            }
            let info = controlLoop.info(of: device)
            let appliesNow = !(info.state == .connected || info.state == .ready)
            if before != mask {
                emit(SwitchEvent(.featuresChanged, port: name, data: [
                    "offered": .string("0x" + String(mask, radix: 16)), "source": .string("api"),
                    "applies": .string(appliesNow ? "now" : "next_session"),
                ]))
                if let spec = ports.withLock({ $0[name]?.spec }) { changed(.saved(spec)) }
            }
            return FeatureUpdate(features: Self.features(device, info), appliesNow: appliesNow)
        }
    }

    static func features(_ device: VhostUserDevice, _ info: VhostUserDeviceInfo) -> FeaturesView {
        FeaturesView(supported: FeatureOffer.supported, offered: device.offeredFeatures, negotiated: info.negotiatedFeatures,
                     offeredProtocol: info.offeredProtocolFeatures, negotiatedProtocol: info.negotiatedProtocolFeatures)
    }
}
