// swift-tools-version:6.0
import PackageDescription

// Microbenchmarks of the dataplane hot path (see Benchmarks/README.md).
//
// The root package exports only executables, so its library targets cannot be imported
// from here, and Package.swift at the root is not ours to change. Instead Sources/ holds
// symlinks to the real sources: CVhostShims, VhostSystem and Virtio as modules, and the
// dataplane's hot-path files (BurstForwarder, MacLearningTable, PollSnapshot, ...) compiled
// into the benchmark executable itself, so their internal types are reachable. The code
// measured is exactly the code in ../../Sources, built with the same -c release settings.
//
// ordo-one/package-benchmark was tried first: its Linux + Swift 6.3 build needs
// swift-runtime-interposer, which is not available offline here, so this is a small
// executable with a manual timing loop (median of repeated runs).
// The same hot-path setting as the root package: Virtio and the dataplane files are built
// without dynamic exclusivity checks, as in vhost-switchd.
let hotPath: [SwiftSetting] = [.unsafeFlags(["-enforce-exclusivity=unchecked"])]

let package = Package(
    name: "vhost-switch-micro",
    platforms: [.macOS(.v14)],
    targets: [
        .target(name: "CVhostShims"),
        .target(name: "VhostSystem", dependencies: ["CVhostShims"]),
        .target(name: "Virtio", dependencies: ["VhostSystem", "CVhostShims"], swiftSettings: hotPath),
        .executableTarget(name: "vhost-switch-micro", dependencies: ["Virtio", "VhostSystem", "CVhostShims"], swiftSettings: hotPath),
    ]
)
