import ManagementClient
import XCTest
@testable import vhost_switch_cni

/// The network configuration as hostile input, and the POST /v1/ports body built from it:
/// in-process, no daemon, no files.
final class NetworkConfigTests: XCTestCase {
    let settings = InstallSettings()
    let kubernetesArgs = "K8S_POD_NAMESPACE=default;K8S_POD_NAME=testpmd"

    func environment(args: String? = nil, ifname: String = "net1", command: String = "ADD") throws -> CNIEnvironment {
        try CNIEnvironment(environment: ["CNI_COMMAND": command, "CNI_CONTAINERID": "3f2a9c1d7b4e5a6b", "CNI_NETNS": "/var/run/netns/x",
                                         "CNI_IFNAME": ifname, "CNI_ARGS": args ?? kubernetesArgs], entries: [])
    }

    func config(_ members: String, command: CNIEnvironment.Command = .add, settings: InstallSettings? = nil) throws -> NetworkConfig {
        let text = #"{"cniVersion": "1.0.0", "name": "vhost-net", "type": "vhost-switch-cni""# + (members.isEmpty ? "" : ", " + members) + "}"
        return try NetworkConfig(bytes: Array(text.utf8), command: command, settings: settings ?? self.settings)
    }

    func requestBody(_ members: String, args: String? = nil) throws -> JSONValue {
        let plugin = Plugin(environment: try environment(args: args), config: try config(members), settings: settings,
                            client: APIClient(endpoint: try APIEndpoint(parsing: NetworkConfig.defaultAPI)))
        return try plugin.portRequest()
    }

    /// The CNI error code and message a configuration is refused with.
    func refusal(_ members: String, file: StaticString = #filePath, line: UInt = #line) -> CNIError? {
        do {
            _ = try requestBody(members)
            XCTFail("accepted: \(members)", file: file, line: line)
            return nil
        } catch let error as CNIError {
            XCTAssertFalse(error.message.isEmpty, file: file, line: line)
            return error
        } catch {
            XCTFail("\(error)", file: file, line: line)
            return nil
        }
    }

    // MARK: vlan, trunk, macSpoofCheck, maxMacs, rateLimit (issue 18)

    func testPolicyKeysBecomeTheDaemonsPortKeys() throws {
        let body = try requestBody(#""mac": "02:AA:bb:cc:dd:01", "vlan": 10, "trunk": [30, 20], "macSpoofCheck": true, "maxMacs": 16, "rateLimit": {"pps": 100000, "burst": 500}"#)
        XCTAssertEqual(body["vlan"]?.intValue, 10)
        XCTAssertEqual(body["trunk"]?.arrayValue?.compactMap(\.intValue), [30, 20])
        XCTAssertEqual(body["allowed_macs"]?.arrayValue?.compactMap(\.stringValue), ["02:aa:bb:cc:dd:01"])
        XCTAssertEqual(body["max_macs"]?.intValue, 16)
        XCTAssertEqual(body["rate_limit"]?["pps"]?.intValue, 100000)
        XCTAssertEqual(body["rate_limit"]?["burst"]?.intValue, 500)
        XCTAssertEqual(body["mac"]?.stringValue, "02:aa:bb:cc:dd:01")
        // The rest of the body is as before.
        XCTAssertEqual(body["type"]?.stringValue, "vhost-user")
        XCTAssertEqual(body["socket"]?["path"]?.stringValue, "pods/default_testpmd/net1.sock")
    }

    func testWithoutPolicyKeysTheBodyHasNone() throws {
        let body = try requestBody(#""mac": "auto", "macSpoofCheck": false"#)
        for key in ["vlan", "trunk", "allowed_macs", "max_macs", "rate_limit"] { XCTAssertNil(body[key], key) }
    }

    func testSpoofCheckAllowsThePodsMACWhereverItComesFrom() throws {
        // The runtime's MAC (the "mac" capability) wins over the configuration's.
        let runtime = try requestBody(#""mac": "02:00:00:00:00:01", "macSpoofCheck": true, "runtimeConfig": {"mac": "02:00:00:00:00:02"}"#)
        XCTAssertEqual(runtime["allowed_macs"]?.arrayValue?.compactMap(\.stringValue), ["02:00:00:00:00:02"])
        let args = try requestBody(#""macSpoofCheck": true"#, args: kubernetesArgs + ";MAC=02:00:00:00:00:03")
        XCTAssertEqual(args["allowed_macs"]?.arrayValue?.compactMap(\.stringValue), ["02:00:00:00:00:03"])
        let derived = try requestBody(#""mac": "auto", "macSpoofCheck": true"#)
        let mac = try XCTUnwrap(derived["mac"]?.stringValue)
        XCTAssertEqual(derived["allowed_macs"]?.arrayValue?.compactMap(\.stringValue), [mac])
    }

    func testSpoofCheckNeedsAUnicastMAC() {
        XCTAssertEqual(refusal(#""macSpoofCheck": true"#)?.code, 7)
        XCTAssertTrue(refusal(#""macSpoofCheck": true"#)?.details.contains("mac") == true)
        XCTAssertEqual(refusal(#""mac": "03:00:00:00:00:01", "macSpoofCheck": true"#)?.code, 7)
    }

    func testHostilePolicyValuesAreRefusedByName() {
        let cases: [(String, String)] = [
            (#""vlan": 0"#, "vlan"), (#""vlan": 4095"#, "vlan"), (#""vlan": "10""#, "vlan"), (#""vlan": 1.5"#, "vlan"),
            (#""vlan": -1"#, "vlan"), (#""vlan": 99999999999999999999999"#, "vlan"),
            (#""trunk": 10"#, "trunk"), (#""trunk": [10, 10]"#, "trunk"), (#""trunk": [0]"#, "trunk"), (#""trunk": [4095]"#, "trunk"),
            (#""trunk": ["10"]"#, "trunk"), (#""trunk": [{"id": 1}]"#, "trunk"), (#""vlan": 10, "trunk": [10, 20]"#, "trunk"),
            (#""macSpoofCheck": "yes""#, "macSpoofCheck"), (#""macSpoofCheck": 1"#, "macSpoofCheck"),
            (#""maxMacs": 0"#, "maxMacs"), (#""maxMacs": 8193"#, "maxMacs"), (#""maxMacs": "64""#, "maxMacs"),
            (#""rateLimit": 1000"#, "rateLimit"), (#""rateLimit": {"pps": 1000}"#, "rateLimit"), (#""rateLimit": {"burst": 10}"#, "rateLimit"),
            (#""rateLimit": {"pps": 0, "burst": 10}"#, "rateLimit.pps"), (#""rateLimit": {"pps": 10, "burst": 0}"#, "rateLimit.burst"),
            (#""rateLimit": {"pps": 10, "burst": 10, "bps": 1}"#, "rateLimit.bps"), (#""rateLimit": {"pps": 1e3, "burst": 10}"#, "rateLimit.pps"),
            (#""rateLimit": {"pps": 10000000000, "burst": 10}"#, "rateLimit.pps"),
        ]
        for (members, key) in cases {
            let error = refusal(members)
            XCTAssertEqual(error?.code, 7, members)
            XCTAssertTrue(error?.message.contains(key) == true, "\(members): \(error?.message ?? "")")
        }
    }

    func testTrunkOf4094VLANsIsAccepted() throws {
        let all = (1...4094).map(String.init).joined(separator: ",")
        XCTAssertEqual(try requestBody(#""trunk": ["# + all + "]")["trunk"]?.arrayValue?.count, 4094)
    }

    // MARK: the API and token allow-list (issue 19)

    func testAPIOnlyAsAUnixSocketDirectlyInAnAllowedDirectory() throws {
        XCTAssertEqual(try config(#""api": "unix:///run/vhost-switch/api.sock""#).api.path, "/run/vhost-switch/api.sock")
        let refused = ["unix:///tmp/api.sock", "unix:///run/vhost-switch/sockets/pods/x/api.sock", "unix:///run/vhost-switch/../../tmp/api.sock",
                       "unix:///run/vhost-switch//api.sock", "unix:///run/vhost-switch/./api.sock", "http://127.0.0.1:9870", "unix://run/api.sock",
                       "unix:///run/vhost-switch"]
        for api in refused {
            XCTAssertThrowsError(try config(#""api": ""# + api + #"""#), api) { error in
                XCTAssertEqual((error as? CNIError)?.code, 7, api)
                XCTAssertTrue((error as? CNIError)?.message.contains("api") == true, "\(error)")
            }
        }
    }

    func testTokenFileOnlyInAnAllowedDirectory() throws {
        XCTAssertEqual(try config(#""apiTokenFile": "/run/vhost-switch/token""#).apiTokenFile, "/run/vhost-switch/token")
        for file in ["/etc/shadow", "/run/vhost-switch/sockets/token", "/run/vhost-switch/../token", "token", "/run/vhost-switch/"] {
            XCTAssertThrowsError(try config(#""apiTokenFile": ""# + file + #"""#), file) { error in
                XCTAssertEqual((error as? CNIError)?.code, 7, file)
                XCTAssertTrue((error as? CNIError)?.message.contains("apiTokenFile") == true, "\(error)")
            }
        }
    }

    func testTenantCannotChooseWhereRecordsAreWritten() {
        XCTAssertThrowsError(try config(#""dataDir": "/etc""#)) { XCTAssertEqual(($0 as? CNIError)?.code, 7) }
        XCTAssertEqual(try config("").dataDir, settings.dataDirectory)
    }

    func testInstallSettingsFormat() throws {
        let text = #"{"allowedDirectories": ["/run/a", "/run/b"], "socketDirectory": "/run/a/sockets", "deviceInfoDirectory": "/run/devinfo", "dataDirectory": "/var/lib/x"}"#
        let parsed = try InstallSettings(parsing: Array(text.utf8), from: "test")
        XCTAssertEqual(parsed.allowedDirectories, ["/run/a", "/run/b"])
        XCTAssertEqual(parsed.socketDirectory, "/run/a/sockets")
        XCTAssertEqual(parsed.deviceInfoDirectory, "/run/devinfo")
        XCTAssertEqual(parsed.dataDirectory, "/var/lib/x")
        XCTAssertNil(parsed.allowListProblem("/run/b/api.sock"))
        XCTAssertNotNil(parsed.allowListProblem("/run/vhost-switch/api.sock"), "the file's list replaces the default")
        for bad in [#"{"allowedDirectories": []}"#, #"{"allowedDirectories": ["run"]}"#, #"{"allowedDirectories": ["/run/"]}"#,
                    #"{"socketDirectory": "/run/../etc"}"#, #"{"apiTokenFile": "/x"}"#, #"[]"#, #"{"dataDirectory": 1}"#] {
            XCTAssertThrowsError(try InstallSettings(parsing: Array(bad.utf8), from: "test"), bad) { XCTAssertEqual(($0 as? CNIError)?.code, 4, bad) }
        }
    }

    // MARK: names: errors, never a silent other name (issue 19)

    func testPodDirectoryNameIsNeverSilentlyReplaced() throws {
        let long = "K8S_POD_NAMESPACE=a-rather-long-namespace-name;K8S_POD_NAME=testpmd-deployment-7d9f8b6c5d-abcde"
        for args in [long, "K8S_POD_NAMESPACE=default", "K8S_POD_NAME=testpmd", "K8S_POD_NAMESPACE=;K8S_POD_NAME=x", "K8S_POD_NAMESPACE=a b;K8S_POD_NAME=x"] {
            XCTAssertThrowsError(try requestBody("", args: args), args) { error in
                XCTAssertEqual((error as? CNIError)?.code, 4, args)
                XCTAssertTrue((error as? CNIError)?.message.contains("socket directory") == true || (error as? CNIError)?.message.contains("K8S_POD") == true, "\(error)")
            }
        }
        // Not Kubernetes (neither key): the container id names the directory, as documented.
        XCTAssertEqual(try requestBody("", args: "IgnoreUnknown=1")["socket"]?["path"]?.stringValue, "pods/3f2a9c1d7b4e/net1.sock")
    }

    func testInterfaceNamesAreNotRewritten() {
        for ifname in ["net@1", "net#1", "-net"] {
            XCTAssertThrowsError(try environment(ifname: ifname), ifname) { XCTAssertEqual(($0 as? CNIError)?.code, 4, ifname) }
        }
    }

    func testSocketPathOverTheUnixLimitIsAnError() throws {
        var deep = InstallSettings()
        deep.socketDirectory = "/run/vhost-switch/" + String(repeating: "s", count: 60)
        let plugin = Plugin(environment: try environment(), config: try config(""), settings: deep,
                            client: APIClient(endpoint: try APIEndpoint(parsing: NetworkConfig.defaultAPI)))
        XCTAssertThrowsError(try plugin.hostSocketPath()) { XCTAssertTrue(($0 as? CNIError)?.message.contains("107") == true, "\($0)") }
    }

    // MARK: mode (issue 20: the mode that survives a daemon restart is the default)

    /// Without `mode` the switch is the client of the pod's socket (the pod's QEMU server=on,
    /// virtio-user server=1): it reconnects after the daemon restarts, even after kill -9.
    func testModeDefaultsToClientAndServerStaysSelectable() throws {
        XCTAssertEqual(try config("").mode, .client)
        let defaulted = try requestBody(#""owner": "0", "group": "0""#)
        XCTAssertEqual(defaulted["socket"]?["mode"]?.stringValue, "client")
        XCTAssertNil(defaulted["socket"]?["owner"], "the pod creates the socket in client mode; its owner is the pod's")
        XCTAssertEqual(DeviceInfo.document(switchMode: try config("").mode, socketPath: "/x")["vhost-user"]?["mode"]?.stringValue, "server",
                       "the pod's side listens")
        let served = try requestBody(#""mode": "server", "owner": "0", "group": "0""#)
        XCTAssertEqual(served["socket"]?["mode"]?.stringValue, "server")
        XCTAssertEqual(served["socket"]?["owner"]?.stringValue, "0")
    }

    // MARK: device info (NPWG device-info spec 1.1.0)

    func testDeviceInfoModeIsThePodsSide() {
        let served = DeviceInfo.document(switchMode: .server, socketPath: "/var/run/vhost-switch/net1.sock")
        XCTAssertEqual(served["type"]?.stringValue, "vhost-user")
        XCTAssertEqual(served["version"]?.stringValue, "1.1.0")
        XCTAssertEqual(served["vhost-user"]?["mode"]?.stringValue, "client", "the switch creates the socket: the pod is the client")
        XCTAssertEqual(served["vhost-user"]?["path"]?.stringValue, "/var/run/vhost-switch/net1.sock")
        XCTAssertEqual(DeviceInfo.document(switchMode: .client, socketPath: "/x")["vhost-user"]?["mode"]?.stringValue, "server")
    }

    func testDeviceInfoFileOnlyInTheDeviceInfoDirectory() throws {
        let good = try config(#""runtimeConfig": {"CNIDeviceInfoFile": "/var/run/k8s.cni.cncf.io/devinfo/cni/default-testpmd-net1.json"}"#)
        XCTAssertEqual(good.deviceInfoFile, "/var/run/k8s.cni.cncf.io/devinfo/cni/default-testpmd-net1.json")
        for file in ["/etc/passwd", "/var/run/k8s.cni.cncf.io/devinfo/cni/../../x", "/var/run/k8s.cni.cncf.io/devinfo/cni/a/b",
                     "/var/run/k8s.cni.cncf.io/devinfo/cni/.hidden", "/var/run/k8s.cni.cncf.io/devinfo/cni/"] {
            XCTAssertThrowsError(try config(#""runtimeConfig": {"CNIDeviceInfoFile": ""# + file + #""}"#), file) {
                XCTAssertEqual(($0 as? CNIError)?.code, 7, file)
            }
        }
        XCTAssertThrowsError(try config(#""runtimeConfig": {"CNIDeviceInfoFile": 7}"#))
    }

    func testPodSocketDirNamesTheSocketAsThePodSeesIt() throws {
        let plugin = Plugin(environment: try environment(), config: try config(#""podSocketDir": "/var/run/vhost-switch""#), settings: settings,
                            client: APIClient(endpoint: try APIEndpoint(parsing: NetworkConfig.defaultAPI)))
        XCTAssertEqual(try plugin.podSocketPath(), "/var/run/vhost-switch/net1.sock")
        XCTAssertEqual(try plugin.hostSocketPath(), "/run/vhost-switch/sockets/pods/default_testpmd/net1.sock")
        XCTAssertThrowsError(try config(#""podSocketDir": "relative""#)) { XCTAssertEqual(($0 as? CNIError)?.code, 7) }
    }
}
