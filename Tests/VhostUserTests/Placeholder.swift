import XCTest
final class PlaceholderVhostUserTests: XCTestCase {}
