// swift-tools-version:6.0
import PackageDescription

// Fuzz targets and the hostile front-end for vhost-switch (issue 8).
//
// The root package exports only executables (a package dependency can only use products),
// so the modules under test are compiled here from the very same sources:
// Sources/<Module> in this package are symlinks to ../../Sources/<Module> (and
// Sources/TestSupport to ../../Tests/TestSupport). Nothing is copied.
//
// Fuzzers (libFuzzer + AddressSanitizer), see ../scripts/fuzz.sh which does all of this:
//   swift build --package-path Fuzz --scratch-path .build-fuzz -c debug \
//     -Xswiftc -sanitize=fuzzer,address -Xswiftc -use-ld=lld --product fuzz-vhost-user
// (gold crashes on the fuzzer link; lld ships with the toolchain.)
//
// Hostile front-end (no sanitizers):
//   swift build --package-path Fuzz --scratch-path .build-hostile -c release --product hostile-frontend
let strictSwift: [SwiftSetting] = [.enableUpcomingFeature("ExistentialAny")]
/// Fuzzers and the tool keep their state in top-level globals: Swift 5 mode.
let toolSwift: [SwiftSetting] = [.swiftLanguageMode(.v5)]

let package = Package(
    name: "vhost-switch-fuzz",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "fuzz-vhost-user", targets: ["FuzzVhostUser"]),
        .executable(name: "fuzz-virtqueue", targets: ["FuzzVirtqueue"]),
        .executable(name: "fuzz-json", targets: ["FuzzJSON"]),
        .executable(name: "hostile-frontend", targets: ["HostileFrontend"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
    ],
    targets: [
        // The modules under test (symlinked sources, same settings as the root package).
        .systemLibrary(name: "CMicroHTTPD", pkgConfig: "libmicrohttpd", providers: [.apt(["libmicrohttpd-dev"])]),
        .systemLibrary(name: "CJansson", pkgConfig: "jansson", providers: [.apt(["libjansson-dev"])]),
        .target(name: "CVhostShims"),
        .target(name: "VhostSystem", dependencies: ["CVhostShims"], swiftSettings: strictSwift),
        .target(name: "Virtio", dependencies: ["VhostSystem", "CVhostShims"], swiftSettings: strictSwift),
        .target(name: "VhostUser", dependencies: ["Virtio", "VhostSystem", .product(name: "Logging", package: "swift-log")], swiftSettings: strictSwift),
        .target(name: "Dataplane", dependencies: ["Virtio", "VhostUser", "VhostSystem", .product(name: "Logging", package: "swift-log")], swiftSettings: strictSwift),
        .target(
            name: "ManagementPlane",
            dependencies: ["Dataplane", "VhostUser", "Virtio", "VhostSystem", "CMicroHTTPD", "CJansson", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strictSwift),

        // Fuzzing.
        .target(name: "FuzzSupport", swiftSettings: toolSwift),
        .executableTarget(name: "FuzzVhostUser", dependencies: ["FuzzSupport", "VhostUser", "Virtio", "VhostSystem", .product(name: "Logging", package: "swift-log")], swiftSettings: toolSwift),
        .executableTarget(name: "FuzzVirtqueue", dependencies: ["FuzzSupport", "Virtio", "VhostSystem", "Dataplane"], swiftSettings: toolSwift),
        .executableTarget(name: "FuzzJSON", dependencies: ["FuzzSupport", "ManagementPlane", "Dataplane", "VhostUser", "VhostSystem", .product(name: "Logging", package: "swift-log")], swiftSettings: toolSwift),

        // The hostile front-end (tool; not a fuzzer).
        .executableTarget(name: "HostileFrontend", dependencies: ["VhostSystem", "VhostUser", "Virtio", "CVhostShims"], swiftSettings: toolSwift),
    ]
)
