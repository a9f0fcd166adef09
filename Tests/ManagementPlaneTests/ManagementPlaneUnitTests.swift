import Dataplane
import XCTest
@testable import ManagementPlane

final class RouterTests: XCTestCase {
    func makeRouter() -> Router<Void> {
        var router = Router<Void>()
        router.add("GET", "/v1/ports/{name}") { _, _, p throws(APIError) in .json(["name": .string(p["name"])]) }
        router.add("DELETE", "/v1/ports/{name}") { _, _, _ throws(APIError) in .noContent() }
        router.add("GET", "/v1/fail") { _, _, _ throws(APIError) in throw APIError(.conflict, .portExists, "taken") }
        return router
    }

    func testParametersNotFoundAndMethodNotAllowed() throws {
        let router = makeRouter()
        let found = router.route(HTTPRequest(method: "GET", path: "/v1/ports/vm1"), context: ())
        XCTAssertEqual(found.status, 200)
        guard case .bytes(let body) = found.body else { return XCTFail() }
        XCTAssertEqual(String(decoding: body, as: UTF8.self), "{\"name\":\"vm1\"}\n")
        XCTAssertEqual(router.route(HTTPRequest(method: "GET", path: "/v1/ports/"), context: ()).status, 404)
        XCTAssertEqual(router.route(HTTPRequest(method: "GET", path: "/v1/ports/a/b"), context: ()).status, 404)
        XCTAssertEqual(router.route(HTTPRequest(method: "GET", path: "nope"), context: ()).status, 404)
        let wrong = router.route(HTTPRequest(method: "POST", path: "/v1/ports/vm1"), context: ())
        XCTAssertEqual(wrong.status, 405)
        XCTAssertEqual(wrong.header("Allow"), "DELETE, GET, HEAD")
        XCTAssertEqual(router.route(HTTPRequest(method: "HEAD", path: "/v1/ports/x"), context: ()).status, 200)
        let failed = router.route(HTTPRequest(method: "GET", path: "/v1/fail"), context: ())
        XCTAssertEqual(failed.status, 409)
        guard case .bytes(let error) = failed.body else { return XCTFail() }
        XCTAssertEqual(try JSON.parse(error), ["error": ["code": "port_exists", "message": "taken"]])
    }

    func testPrintableEscapesControlCharacters() {
        XCTAssertEqual(RouterText.printable("a\nb\u{7F}"), "a\\x0ab\\x7f")
        XCTAssertEqual(RouterText.printable(String(repeating: "x", count: 500)).count, 200)
    }
}

final class BearerTokenTests: XCTestCase {
    func testMatching() throws {
        let token = try BearerToken("0123456789abcdefXYZ")
        XCTAssertTrue(token.matches(authorizationHeader: "Bearer 0123456789abcdefXYZ"))
        XCTAssertTrue(token.matches(authorizationHeader: "bearer 0123456789abcdefXYZ"))
        XCTAssertFalse(token.matches(authorizationHeader: "Bearer 0123456789abcdefXY"))
        XCTAssertFalse(token.matches(authorizationHeader: "Bearer 0123456789abcdefXYZZ"))
        XCTAssertFalse(token.matches(authorizationHeader: "Basic 0123456789abcdefXYZ"))
        XCTAssertFalse(token.matches(authorizationHeader: nil))
        XCTAssertFalse(token.matches(authorizationHeader: "Bearer "))
        XCTAssertThrowsError(try BearerToken("short"))
        XCTAssertThrowsError(try BearerToken("has space in it 0123456"))
        XCTAssertTrue(BearerToken.constantTimeEquals([1, 2, 3], [1, 2, 3]))
        XCTAssertFalse(BearerToken.constantTimeEquals([1, 2, 3], [1, 2]))
        XCTAssertFalse(BearerToken.constantTimeEquals([], [0]))
    }

    func testMediaTypes() {
        XCTAssertTrue(HTTPServer.isJSONMediaType("application/json"))
        XCTAssertTrue(HTTPServer.isJSONMediaType("Application/JSON; charset=utf-8"))
        XCTAssertTrue(HTTPServer.isJSONMediaType("application/merge-patch+json"))
        XCTAssertFalse(HTTPServer.isJSONMediaType("application/jsonp"))
        XCTAssertFalse(HTTPServer.isJSONMediaType("application/json-patch+json"))
        XCTAssertFalse(HTTPServer.isJSONMediaType("text/plain"))
        XCTAssertFalse(HTTPServer.isJSONMediaType(nil))
    }
}

final class EventHubTests: XCTestCase {
    func testIdsIncreaseHistoryIsBoundedAndFiltered() {
        let hub = EventHub(capacity: 4)
        for i in 0..<6 { hub.publish(SwitchEvent(i % 2 == 0 ? .portCreated : .portDeleted, port: "p\(i)")) }
        let history = hub.history()
        XCTAssertEqual(history.map(\.id), [3, 4, 5, 6])
        XCTAssertEqual(hub.history(since: 4).map(\.id), [5, 6])
        XCTAssertEqual(hub.history(filter: .init(types: [.portDeleted])).map(\.id), [4, 6])
        XCTAssertEqual(hub.history(filter: .init(port: "p4")).map(\.id), [5])
        XCTAssertEqual(hub.nextID, 7)
        XCTAssertEqual(hub.counts[.portCreated], 3)
    }

    func testSubscribersGetReplayThenLiveEvents() {
        let hub = EventHub()
        hub.publish(SwitchEvent(.portCreated, port: "a"))
        hub.publish(SwitchEvent(.deviceReady, port: "a"))
        let stream = hub.subscribe(since: 0, filter: .init(types: [.portCreated, .portDeleted]))
        hub.publish(SwitchEvent(.portDeleted, port: "a"))
        var buffer = [UInt8](repeating: 0, count: 8192)
        let result = buffer.withUnsafeMutableBytes { stream.read(into: $0, suspend: {}) }
        guard case .bytes(let count) = result else { return XCTFail("\(result)") }
        let text = String(decoding: buffer[..<count], as: UTF8.self)
        XCTAssertTrue(text.contains("id: 1\nevent: port.created\n"), text)
        XCTAssertFalse(text.contains("device.ready"), text)
        XCTAssertTrue(text.contains("id: 3\nevent: port.deleted\n"), text)
        // Nothing left: the reader is told to wait (the server suspends the connection).
        var suspended = false
        XCTAssertEqual(buffer.withUnsafeMutableBytes { stream.read(into: $0, suspend: { suspended = true }) }, .wait)
        XCTAssertTrue(suspended)
        hub.closeAll()
        XCTAssertEqual(buffer.withUnsafeMutableBytes { stream.read(into: $0, suspend: {}) }, .end)
    }

    func testSlowSubscriberIsCutOff() {
        let stream = EventStream()
        let chunk = [UInt8](repeating: 0x41, count: 64 * 1024)
        var accepted = 0
        while stream.send(chunk) { accepted += 1 }
        XCTAssertLessThanOrEqual(accepted * chunk.count, EventStream.maxPendingBytes)
        XCTAssertFalse(stream.send([1]))
    }

    func testEventJSONAndTimestamp() {
        XCTAssertEqual(Timestamp.rfc3339(milliseconds: 0), "1970-01-01T00:00:00.000Z")
        XCTAssertEqual(Timestamp.rfc3339(milliseconds: 951_782_400_123), "2000-02-29T00:00:00.123Z")
        XCTAssertEqual(Timestamp.rfc3339(milliseconds: 1_700_000_000_000), "2023-11-14T22:13:20.000Z")
        var event = SwitchEvent(.vringStateChanged, port: "p", data: ["vring": .integer(1), "enabled": .bool(true)])
        event.time = 0
        let json = EventHub.json(EventHub.Event(id: 9, event: event))
        XCTAssertEqual(json.rendered(), #"{"data":{"enabled":true,"vring":1},"id":9,"port":"p","time":"1970-01-01T00:00:00.000Z","type":"vring.state_changed"}"#)
    }
}

final class PersistenceTests: XCTestCase {
    func testSpecEncodingRoundTripsThroughTheDecoder() throws {
        var vhost = PortSpec.VhostUser(socketPath: "pod/a.sock", mode: .client)
        vhost.owner = "0"
        vhost.group = "0"
        vhost.permissions = 0o660
        vhost.queuePairs = 4
        vhost.mtu = 9000
        vhost.mac = "02:00:00:00:00:01"
        vhost.featureMask = 0x1_0000_8000
        var spec = PortSpec(name: "a", kind: .vhostUser(vhost))
        XCTAssertEqual(try PortSpecDecoder.decode(PortSpecEncoder.encode(spec)), spec)
        var packet = PortSpec(name: "eth", kind: .afPacket(interface: "eth0"))
        XCTAssertEqual(try PortSpecDecoder.decode(PortSpecEncoder.encode(packet)), packet)
        // The policy keys round-trip for both types (issue 18).
        spec.policy = .everyKeySet
        packet.policy = .everyKeySet
        XCTAssertEqual(try PortSpecDecoder.decode(PortSpecEncoder.encode(spec)), spec)
        XCTAssertEqual(try PortSpecDecoder.decode(PortSpecEncoder.encode(packet)), packet)
        XCTAssertEqual(PortSpecDecoder.parseMask("0x1F"), 31)
        XCTAssertNil(PortSpecDecoder.parseMask("0x"))
        XCTAssertNil(PortSpecDecoder.parseMask("0x10000000000000000"))
    }
}
