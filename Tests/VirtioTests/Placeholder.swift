import XCTest
final class PlaceholderVirtioTests: XCTestCase {}
