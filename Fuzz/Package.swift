// swift-tools-version:6.0
import PackageDescription

// Fuzz targets and the hostile front-end for vhost-switch (issue 8).
//
// The modules under test come from the root package (a path dependency, one package graph):
// they are built with the root's own settings, the hot-path flags on Virtio and Dataplane
// included, so the fuzzers exercise the code vhost-switchd runs. SwiftPM allows the root's
// unsafeFlags because the dependency is a local path.
//
// Fuzzers (libFuzzer + AddressSanitizer), see ../scripts/fuzz.sh which does all of this:
//   swift build --package-path Fuzz --scratch-path .build-fuzz -c debug \
//     -Xswiftc -sanitize=fuzzer,address -Xswiftc -use-ld=lld --product fuzz-vhost-user
// (-Xswiftc reaches every Swift module of the graph, the root's too; gold crashes on the
// fuzzer link, lld ships with the toolchain.)
//
// Hostile front-end (no sanitizers):
//   swift build --package-path Fuzz --scratch-path .build-hostile -c release --product hostile-frontend
/// Fuzzers and the tool keep their state in top-level globals: Swift 5 mode.
let toolSwift: [SwiftSetting] = [.swiftLanguageMode(.v5)]

/// A library product of the root package.
func switchModule(_ name: String) -> Target.Dependency { .product(name: name, package: "vhost-switch") }

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
        // Named: a path dependency's identity is its directory's name (the checkout's, which
        // differs between clones and worktrees); the name makes "vhost-switch" work in all.
        .package(name: "vhost-switch", path: ".."),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
    ],
    targets: [
        // Fuzzing.
        .target(name: "FuzzSupport", dependencies: [switchModule("Virtio")], swiftSettings: toolSwift),
        .executableTarget(
            name: "FuzzVhostUser",
            dependencies: ["FuzzSupport", switchModule("VhostUser"), switchModule("Virtio"), switchModule("VhostSystem"),
                           .product(name: "Logging", package: "swift-log")],
            swiftSettings: toolSwift),
        .executableTarget(
            name: "FuzzVirtqueue",
            dependencies: ["FuzzSupport", switchModule("Virtio"), switchModule("VhostSystem"), switchModule("Dataplane")],
            swiftSettings: toolSwift),
        .executableTarget(
            name: "FuzzJSON",
            dependencies: ["FuzzSupport", switchModule("ManagementPlane"), switchModule("PortService"), switchModule("Dataplane"), switchModule("VhostUser"),
                           switchModule("VhostSystem"), .product(name: "Logging", package: "swift-log")],
            swiftSettings: toolSwift),

        // The hostile front-end (tool; not a fuzzer). It speaks vhost-user through the test kit's
        // FakeFrontend and writes its guest's rings through its SplitGuestDriverRing (TestSupport).
        .executableTarget(
            name: "HostileFrontend",
            dependencies: [switchModule("VhostSystem"), switchModule("VhostUser"), switchModule("Virtio"), switchModule("CVhostShims"),
                           switchModule("TestSupport")],
            swiftSettings: toolSwift),
    ]
)
