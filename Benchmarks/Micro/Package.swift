// swift-tools-version:6.0
import PackageDescription

// Microbenchmarks of the dataplane hot path (see Benchmarks/README.md).
//
// The code measured is the root package's: its library products CVhostShims, VhostSystem,
// Virtio and Dataplane, through a path dependency (one package graph), built with the
// root's own settings (the hot-path flags on Virtio and Dataplane, as in vhost-switchd) and
// this build's -c release. The switching step goes through Dataplane's
// `@_spi(Benchmarks) SwitchingStep`, which builds the poll thread's own forwarder and
// snapshot.
//
// ordo-one/package-benchmark was tried first: its Linux + Swift 6.3 build needs
// swift-runtime-interposer, which is not available offline here, so this is a small
// executable with a manual timing loop (median of repeated runs).

/// The fake guest's posting is part of every ring figure (and the baseline on its own):
/// built without dynamic exclusivity checks like the code it drives, as before.
let hotPath: [SwiftSetting] = [.unsafeFlags(["-enforce-exclusivity=unchecked"])]

/// A library product of the root package.
func switchModule(_ name: String) -> Target.Dependency { .product(name: name, package: "vhost-switch") }

let package = Package(
    name: "vhost-switch-micro",
    platforms: [.macOS(.v14)],
    dependencies: [
        // Named: a path dependency's identity is its directory's name (the checkout's, which
        // differs between clones and worktrees); the name makes "vhost-switch" work in all.
        .package(name: "vhost-switch", path: "../.."),
    ],
    targets: [
        .executableTarget(
            name: "vhost-switch-micro",
            dependencies: [switchModule("Dataplane"), switchModule("Virtio"), switchModule("VhostSystem"), switchModule("CVhostShims")],
            swiftSettings: hotPath),
    ]
)
