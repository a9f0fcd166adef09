import XCTest
@testable import Virtio

final class FeatureNamesTests: XCTestCase {
    func testNamesMatchLinuxAndDPDK() {
        XCTAssertEqual(VirtioNetFeature.mrgRxbuf.name, "mrg_rxbuf")
        XCTAssertEqual(VirtioNetFeature.indirectDesc.name, "indirect_desc")
        XCTAssertEqual(VirtioNetFeature.eventIdx.name, "event_idx")
        XCTAssertEqual(VirtioNetFeature.version1.name, "version_1")
        XCTAssertEqual(VirtioNetFeature.logAll.name, "log_all")
        XCTAssertEqual(VirtioNetFeature.protocolFeatures.name, "protocol_features")
        XCTAssertEqual(VirtioNetFeature.ringPacked.name, "ring_packed")
        XCTAssertEqual(VirtioNetFeature.inOrder.name, "in_order")
        XCTAssertEqual(VirtioNetFeature.version1.mask, 1 << 32)
        XCTAssertEqual(Set(VirtioNetFeature.allCases.map(\.name)).count, VirtioNetFeature.allCases.count)
    }

    func testNamesOfMaskShowUnknownBits() {
        let mask = VirtioNetFeature.csum.mask | VirtioNetFeature.mrgRxbuf.mask | (1 << 4) | (1 << 63)
        XCTAssertEqual(FeatureNames.names(of: mask), ["csum", "bit_04", "mrg_rxbuf", "bit_63"])
        XCTAssertEqual(FeatureNames.names(of: 0), [])
    }

    func testBitNamedAcceptsNamesBitsAndDecimals() {
        XCTAssertEqual(FeatureNames.bit(named: "event_idx"), 29)
        XCTAssertEqual(FeatureNames.bit(named: "EVENT_IDX"), 29)
        XCTAssertEqual(FeatureNames.bit(named: "bit_04"), 4)
        XCTAssertEqual(FeatureNames.bit(named: "bit_63"), 63)
        XCTAssertEqual(FeatureNames.bit(named: "32"), 32)
        XCTAssertNil(FeatureNames.bit(named: "bit_64"))
        XCTAssertNil(FeatureNames.bit(named: "64"))
        XCTAssertNil(FeatureNames.bit(named: "-1"))
        XCTAssertNil(FeatureNames.bit(named: "bit_"))
        XCTAssertNil(FeatureNames.bit(named: "nonsense"))
        XCTAssertNil(FeatureNames.bit(named: ""))
        for feature in VirtioNetFeature.allCases { XCTAssertEqual(FeatureNames.bit(named: feature.name), feature.rawValue) }
        let mask: UInt64 = 0xdead_beef_0000_1234
        XCTAssertEqual(try FeatureNames.mask(of: FeatureNames.names(of: mask)), mask)
        XCTAssertThrowsError(try FeatureNames.mask(of: ["csum", "nonsense", "also_nonsense"])) {
            XCTAssertEqual($0 as? FeatureNames.UnknownName, FeatureNames.UnknownName(name: "nonsense"))
        }
    }

    func testHeaderSizeDependsOnVersionOrMergeableBuffers() {
        XCTAssertEqual(VirtioNetHeader.size(negotiated: 0), 10)
        XCTAssertEqual(VirtioNetHeader.size(negotiated: VirtioNetFeature.version1.mask), 12)
        XCTAssertEqual(VirtioNetHeader.size(negotiated: VirtioNetFeature.mrgRxbuf.mask), 12)
    }
}
