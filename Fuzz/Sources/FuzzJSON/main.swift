// Fuzz target (c): JSON decoding of every request body, and of the two files the daemon
// reads JSON from.
//
// The first input byte (mod 7) picks the consumer, the rest is the body:
//   0  JSON.parse + PortSpecDecoder.decode (a port: POST /v1/ports, config entries, state)
//   1  the config file's logic: {"ports": [port, ...]} (as vhost-switchd's ConfigFile.load)
//   2  PortStateStore.load on a state file with these bytes (corrupt files are moved aside)
//   3  PUT   /v1/ports/fz0/features   through ManagementAPI.handle (the real router/handlers)
//   4  PATCH /v1/ports/fz0/features
//   5  POST  /v1/ports                 (a created port is deleted again)
//   6  any request: "METHOD PATH\n" then the body (the event stream is not opened)
// The API runs on a real Switch + control loop + PortService with a socket directory under
// /tmp, like the daemon; the fixture port fz0 is re-created if a request deleted it. Every
// response must be a well-formed HTTP status and, for errors, a JSON body.
import Dataplane
import FuzzSupport
import Glibc
import Logging
import ManagementPlane
import PortService
import VhostSystem
import VhostUser

let quiet: Logger = {
    var logger = Logger(label: "fuzz", factory: { _ in SwiftLogNoOpLogHandler() })
    logger.logLevel = .critical
    return logger
}()
let scratch: String = {
    var template = Array("/tmp/fuzz-json-XXXXXX".utf8CString)
    guard let made = mkdtemp(&template) else { fatalError("mkdtemp") }
    return String(cString: made)
}()
let stateDirectory = scratch + "/state"
let fabric: Switch = {
    var configuration = Switch.Configuration()
    configuration.pollThreads = 1
    let fabric = try! Switch(configuration: configuration)
    try! fabric.start()
    return fabric
}()
let controlLoop = try! VhostUserControlLoop(logger: quiet)
let events = EventHub()
let ports: PortService = {
    try! FileSystem.makeDirectoryTree(scratch + "/sockets")
    return PortService(fabric: fabric, controlLoop: controlLoop, socketDirectory: SocketDirectory(root: scratch + "/sockets"),
                       logger: quiet, emit: events.handler)
}()
let api = ManagementAPI(service: ports, events: events, logger: quiet)
let store = PortStateStore(directory: stateDirectory, logger: quiet)
let fixtureSpec = PortSpec(name: "fz0", kind: .vhostUser(PortSpec.VhostUser(socketPath: "fz0.sock")))

func ensureFixturePort() {
    if ports.port(named: "fz0") != nil {
        _ = try? ports.changeOfferedFeatures(port: "fz0", .mask(VhostUserDevice.defaultOfferedFeatures))
        return
    }
    _ = try? ports.create(fixtureSpec)
}

func checkResponse(_ response: HTTPResponse, _ what: String) {
    fuzzInvariant((200...599).contains(response.status), "\(what): status \(response.status)")
    if response.status >= 400, case .bytes(let body) = response.body {
        fuzzInvariant((try? JSON.parse(body)) != nil, "\(what): error body is not JSON: \(String(decoding: body, as: UTF8.self))")
    }
}

/// Mirrors vhost-switchd's ConfigFile.load (which lives in the executable module).
func decodeConfig(_ bytes: [UInt8]) {
    guard let json = try? JSON.parse(bytes), let object = json.objectValue else { return }
    guard !object.keys.contains(where: { $0 != "ports" }) else { return }
    guard let entries = (object["ports"] ?? .array([])).arrayValue else { return }
    for entry in entries { _ = try? PortSpecDecoder.decode(entry) }
}

func request(_ method: String, _ path: String, _ body: [UInt8]) {
    let response = api.handle(HTTPRequest(method: method, path: path, headers: ["content-type": "application/json"], body: body))
    checkResponse(response, "\(method) \(path)")
    if method == "POST", response.status == 201, let created = try? JSON.parse(body), let name = created["name"]?.stringValue, name != "fz0" {
        let deleted = api.handle(HTTPRequest(method: "DELETE", path: "/v1/ports/\(name)"))
        fuzzInvariant(deleted.status == 204, "created port \(name) could not be deleted: \(deleted.status)")
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = fuzzBytes(data, size)
    guard let selector = bytes.first else { return 0 }
    let body = Array(bytes.dropFirst())
    ensureFixturePort()
    switch selector % 7 {
    case 0:
        if let json = try? JSON.parse(body) {
            if let spec = try? PortSpecDecoder.decode(json) {
                // What was accepted must survive a round trip through the encoder.
                let again = try? PortSpecDecoder.decode(PortSpecEncoder.encode(spec))
                fuzzInvariant(again != nil, "encoded spec does not decode: \(PortSpecEncoder.encode(spec).rendered())")
            }
            _ = json.rendered()
        }
    case 1:
        decodeConfig(body)
    case 2:
        try? FileSystem.makeDirectoryTree(stateDirectory, permissions: 0o700)
        try? FileSystem.writeFileAtomically(store.path, body)
        _ = store.load()
        // Remove the file and anything moved aside.
        if let dir = opendir(stateDirectory) {
            while let entry = readdir(dir) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
                if name != "." && name != ".." { unlink(stateDirectory + "/" + name) }
            }
            closedir(dir)
        }
    case 3:
        request("PUT", "/v1/ports/fz0/features", body)
    case 4:
        request("PATCH", "/v1/ports/fz0/features", body)
    case 5:
        request("POST", "/v1/ports", body)
    default:
        let newline = body.firstIndex(of: 0x0a) ?? body.endIndex
        let line = String(decoding: body[..<newline], as: UTF8.self).split(separator: " ", maxSplits: 1)
        let method = line.first.map(String.init) ?? "GET"
        var path = line.count > 1 ? String(line[1]) : "/"
        if path.hasPrefix("/v1/events") { path = "/v1/health" }  // a stream, not a body
        let rest = newline < body.endIndex ? Array(body[(newline + 1)...]) : []
        request(method, path, rest)
    }
    return 0
}

runFuzzer(fuzzOne)
