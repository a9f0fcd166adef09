import XCTest
final class CNIPlaceholderTests: XCTestCase {}
