import Foundation

/// An event stream of the daemon's API (GET /v1/events as server-sent events) read by
/// `curl -N` in the background for as long as a test wants. Keeps the text (`text`, `ids`,
/// `waitFor`) and hands every complete line to `onLine` (called on curl's reading thread).
public final class SwitchEventStream: @unchecked Sendable {
    private let process = Process()
    private let lock = NSLock()
    private var buffer = Data()
    private var pendingLine = Data()
    private let keepsText: Bool
    private let onLine: (@Sendable (String) -> Void)?

    /// Starts reading `path` with `headers` added. `keepsText: false` keeps nothing (a long
    /// run whose lines `onLine` consumes).
    public init(_ client: SwitchAPIClient, path: String = "/v1/events", headers: [String] = [], keepsText: Bool = true,
                onLine: (@Sendable (String) -> Void)? = nil) throws {
        self.keepsText = keepsText
        self.onLine = onLine
        let (endpointArguments, url) = client.target(path)
        process.executableURL = URL(fileURLWithPath: SwitchAPIClient.curl)
        process.arguments = ["-s", "-N"] + endpointArguments + headers.flatMap { ["-H", $0] } + [url]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        pipe.fileHandleForReading.readabilityHandler = { [weak self] handle in
            let chunk = handle.availableData
            if chunk.isEmpty { handle.readabilityHandler = nil } else { self?.append(chunk) }
        }
        try process.run()
    }

    deinit { stop() }

    /// Stops reading (what was read stays).
    public func stop() {
        if process.isRunning { process.terminate() }
        process.waitUntilExit()
    }

    /// Whether the stream is still open (the daemon cuts a client that falls too far behind).
    public var isListening: Bool { process.isRunning }

    /// Everything read so far.
    public var text: String { lock.withLock { String(decoding: buffer, as: UTF8.self) } }

    /// Waits until the stream contains `needle`.
    @discardableResult
    public func waitFor(_ needle: String, timeout: TimeInterval = 5) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if text.contains(needle) { return true }
            Thread.sleep(forTimeInterval: 0.02)
        }
        return false
    }

    /// The ids of the events received so far, in order.
    public var ids: [Int] {
        text.split(separator: "\n").compactMap { line in line.hasPrefix("id: ") ? Int(line.dropFirst(4)) : nil }
    }

    private func append(_ chunk: Data) {
        var lines: [String] = []
        lock.withLock {
            if keepsText { buffer.append(chunk) }
            guard onLine != nil else { return }
            pendingLine.append(chunk)
            // A line is complete once its newline arrived.
            while let newline = pendingLine.firstIndex(of: UInt8(ascii: "\n")) {
                lines.append(String(decoding: pendingLine[pendingLine.startIndex..<newline], as: UTF8.self))
                pendingLine.removeSubrange(pendingLine.startIndex...newline)
            }
        }
        for line in lines { onLine?(line) }
    }
}
