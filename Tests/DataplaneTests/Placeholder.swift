import XCTest
final class PlaceholderDataplaneTests: XCTestCase {}
