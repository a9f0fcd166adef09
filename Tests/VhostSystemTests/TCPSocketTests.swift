import XCTest
import Glibc
@testable import VhostSystem

/// `TCPSocket.Address.withSocketAddress` is the one place an address becomes a sockaddr:
/// the listener binds through it and the CNI plugin's `StreamClient` connects through it.
final class TCPSocketTests: XCTestCase {
    func testListenAndConnectOverIPv4AndIPv6Loopback() throws {
        for text in ["127.0.0.1:0", "[::1]:0"] {
            var address = try XCTUnwrap(TCPSocket.Address(parsing: text), text)
            let listening = Result { () throws(SystemError) -> FileDescriptor in try TCPSocket.listen(address) }
            if case .failure(let error) = listening, address.isIPv6, error.errno == EADDRNOTAVAIL || error.errno == EAFNOSUPPORT {
                print("skipping \(text): no IPv6 loopback here (\(error))")
                continue
            }
            let listener = try listening.get()
            address.port = try TCPSocket.boundPort(listener)
            XCTAssertNotEqual(address.port, 0, text)
            let client = FileDescriptor(adopting: socket(address.isIPv6 ? AF_INET6 : AF_INET, Int32(SOCK_STREAM.rawValue), 0))
            XCTAssertTrue(client.isOpen)
            XCTAssertEqual(try address.withSocketAddress { connect(client.rawValue, $0, $1) }, 0, "connect to \(address)")
            let accepted = accept(listener.rawValue, nil, nil)
            XCTAssertGreaterThanOrEqual(accepted, 0, "the listener got the connection to \(address)")
            if accepted >= 0 { FileDescriptor(adopting: accepted).close() }
        }
    }

    func testAHostNameIsRefused() {
        XCTAssertNil(TCPSocket.Address(parsing: "localhost:9870"))
        XCTAssertNil(TCPSocket.Address(parsing: "[localhost]:9870"))
    }
}
