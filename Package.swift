// swift-tools-version:6.0
import PackageDescription

// Layers, bottom to top (see docs/ARCHITECTURE.md): C shims, VhostSystem (the only module
// of the daemon that calls libc), Virtio, VhostUser, Dataplane, PortService, ManagementPlane, the
// executables. CNISystem holds the system calls only the CNI plugin makes.
//
// This is the only package graph: Fuzz/ and Benchmarks/Micro/ are packages that depend on
// this one by path and use the library products below, so every module is built from one
// declaration, with the settings declared here (the hot-path flags included), wherever it
// is built. SwiftPM accepts unsafeFlags in a root package and in a local path dependency,
// not in a remote one: these products are for this repository's tools, not for others.
let strictSwift: [SwiftSetting] = [.enableUpcomingFeature("ExistentialAny")]
// The hot-path modules: guest rings and the forwarding loop are single-owner by design
// (one poll thread per queue, RCU for reconfiguration), so Swift's dynamic exclusivity
// checks only cost cycles per packet there (about 20% of a poll thread, profiled).
let hotPathSwift: [SwiftSetting] = strictSwift + [.unsafeFlags(["-enforce-exclusivity=unchecked"])]

let package = Package(
    name: "vhost-switch",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "vhost-switchd", targets: ["vhost-switchd"]),
        .executable(name: "vhost-switch-cni", targets: ["vhost-switch-cni"]),
        .executable(name: "vhost-switchctl", targets: ["vhost-switchctl"]),
        // For Fuzz/ and Benchmarks/Micro/ (path dependencies of this package).
        .library(name: "CVhostShims", targets: ["CVhostShims"]),
        .library(name: "VhostSystem", targets: ["VhostSystem"]),
        .library(name: "Virtio", targets: ["Virtio"]),
        .library(name: "VhostUser", targets: ["VhostUser"]),
        .library(name: "Dataplane", targets: ["Dataplane"]),
        .library(name: "PortService", targets: ["PortService"]),
        .library(name: "ManagementPlane", targets: ["ManagementPlane"]),
        .library(name: "TestSupport", targets: ["TestSupport"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        // 1.11: LogHandler.log(event:) (LogLineHandler implements it).
        .package(url: "https://github.com/apple/swift-log", from: "1.11.0"),
    ],
    targets: [
        .systemLibrary(name: "CMicroHTTPD", pkgConfig: "libmicrohttpd", providers: [.apt(["libmicrohttpd-dev"])]),
        .systemLibrary(name: "CJansson", pkgConfig: "jansson", providers: [.apt(["libjansson-dev"])]),
        .target(name: "CVhostShims"),
        .target(name: "VhostSystem", dependencies: ["CVhostShims"], swiftSettings: strictSwift),
        .target(name: "Virtio", dependencies: ["VhostSystem", "CVhostShims"], swiftSettings: hotPathSwift),
        .target(name: "VhostUser", dependencies: ["Virtio", "VhostSystem", .product(name: "Logging", package: "swift-log")], swiftSettings: strictSwift),
        .target(name: "Dataplane", dependencies: ["Virtio", "VhostUser", "VhostSystem", .product(name: "Logging", package: "swift-log")], swiftSettings: hotPathSwift),
        // The ports (create, delete, feature changes), change observers (persistence) and the
        // read models the API maps to JSON: between the dataplane and the HTTP layer.
        .target(
            name: "PortService",
            dependencies: ["Dataplane", "VhostUser", "Virtio", "VhostSystem", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strictSwift),
        .target(
            name: "ManagementPlane",
            dependencies: ["PortService", "Dataplane", "VhostUser", "Virtio", "VhostSystem", "CMicroHTTPD", "CJansson", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strictSwift),
        .executableTarget(
            name: "vhost-switchd",
            dependencies: [
                "ManagementPlane", "PortService", "Dataplane", "VhostUser", "VhostSystem",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSwift),
        // The CNI plugin runs on the host from /opt/cni/bin: VhostSystem and CNISystem only
        // (no jansson, no libmicrohttpd, no Foundation).
        .target(name: "CNISystem", dependencies: ["VhostSystem", "CVhostShims"], swiftSettings: strictSwift),
        // The API's clients (the CNI plugin, vhost-switchctl): HTTP/1.1 over the unix socket or
        // TCP, and a plain-Swift JSON value, on CNISystem's connections.
        .target(name: "ManagementClient", dependencies: ["CNISystem", "VhostSystem"], swiftSettings: strictSwift),
        .executableTarget(
            name: "vhost-switch-cni",
            dependencies: ["ManagementClient", "CNISystem", "VhostSystem"],
            swiftSettings: strictSwift),
        // The ops CLI over the API (like ovs-appctl): no jansson, no libmicrohttpd, no Foundation.
        .executableTarget(
            name: "vhost-switchctl",
            dependencies: ["ManagementClient", "CNISystem", "VhostSystem", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: strictSwift),
        .target(name: "TestSupport", dependencies: ["VhostSystem", "Virtio", "VhostUser"], path: "Tests/TestSupport", swiftSettings: strictSwift),
        .testTarget(name: "VhostSystemTests", dependencies: ["VhostSystem"]),
        .testTarget(name: "VirtioTests", dependencies: ["Virtio", "VhostSystem", "TestSupport"]),
        .testTarget(name: "VhostUserTests", dependencies: ["VhostUser", "Virtio", "VhostSystem", "TestSupport"]),
        .testTarget(name: "DataplaneTests", dependencies: ["Dataplane", "VhostUser", "Virtio", "VhostSystem", "TestSupport"]),
        .testTarget(
            name: "ManagementPlaneTests",
            dependencies: ["ManagementPlane", "PortService", "Dataplane", "VhostUser", "VhostSystem", "TestSupport", .product(name: "Logging", package: "swift-log")]),
        .testTarget(name: "CNITests", dependencies: ["TestSupport", "VhostSystem", "vhost-switch-cni"]),
        .testTarget(name: "SwitchctlTests", dependencies: ["vhost-switchctl", "ManagementClient"]),
        .testTarget(name: "IntegrationTests", dependencies: ["TestSupport", "VhostSystem", "Virtio"]),
    ]
)
