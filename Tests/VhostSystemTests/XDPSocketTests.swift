import XCTest
import VhostSystem

/// What XDPSocket refuses before touching the kernel (no root needed). The socket itself is
/// tested on a veth in DataplaneTests (AfXdpPortTests).
final class XDPSocketTests: XCTestCase {
    private func failure(_ interface: String, _ configuration: XDPSocket.Configuration) -> XDPSocket.Failure? {
        do {
            _ = try XDPSocket(interface: interface, configuration: configuration)
            return nil
        } catch {
            return error
        }
    }

    /// Checked first: a missing interface is not looked up (never a real one here, so a
    /// check that let a size through could not attach anything).
    func testRingAndFrameSizesMustBePowersOfTwoInRange() {
        for (ringSize, frameSize) in [(100, 4096), (32, 4096), (65536, 4096), (2048, 1024), (2048, 3000), (2048, 131072)] {
            var configuration = XDPSocket.Configuration()
            configuration.ringSize = ringSize
            configuration.frameSize = frameSize
            XCTAssertEqual(failure("vsw-nope-xdp0", configuration)?.kind, .invalidConfiguration, "ring \(ringSize), frame \(frameSize)")
        }
    }

    func testMissingInterfaceIsNamedAsSuch() {
        let failure = failure("vsw-nope-xdp0", XDPSocket.Configuration())
        XCTAssertEqual(failure?.kind, .noSuchInterface)
        XCTAssertTrue(failure?.description.contains("vsw-nope-xdp0") ?? false, "\(String(describing: failure))")
    }

    func testModesAreTheAPIsWords() {
        XCTAssertEqual(XDPSocket.AttachMode.allCases.map(\.rawValue), ["native", "generic", "auto"])
        XCTAssertEqual(XDPSocket.Configuration().mode, .auto)
        XCTAssertEqual(XDPSocket.Configuration().queue, 0)
    }
}
