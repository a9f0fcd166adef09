import Foundation

/// The executables built by the same `swift build` as the tests (vhost-switchd,
/// vhost-switch-cni, vhost-switchctl): next to the test runner (CommandLine.arguments[0] is
/// .../debug/<package>PackageTests.xctest), else next to the test bundle, else the default
/// build directory.
public enum BuiltProduct {
    public static func path(_ name: String) -> String {
        let runner = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        let bundle = Bundle(for: SwitchDaemonProcess.self).bundleURL
        let candidates = [runner.appendingPathComponent(name).path,
                          bundle.appendingPathComponent(name).path,
                          bundle.deletingLastPathComponent().appendingPathComponent(name).path,
                          FileManager.default.currentDirectoryPath + "/.build/debug/" + name]
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0) } ?? candidates[0]
    }
}
