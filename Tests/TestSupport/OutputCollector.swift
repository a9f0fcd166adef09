import Foundation

/// Collects a pipe's output on a background queue (a full pipe would block the writer): the
/// console and tools of `QemuGuest`, and `Switchctl`'s output.
final class OutputCollector: @unchecked Sendable {
    private let lock = NSLock()
    private var data = Data()
    private var ended = false

    func attach(_ handle: FileHandle) {
        handle.readabilityHandler = { [weak self] handle in
            let chunk = handle.availableData
            if chunk.isEmpty { handle.readabilityHandler = nil; return }
            self?.lock.lock()
            self?.data.append(chunk)
            self?.lock.unlock()
        }
    }

    /// Runs `process` with no input and its stdout and stderr collected here.
    func run(_ process: Process) throws {
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        process.standardInput = FileHandle.nullDevice
        attach(pipe.fileHandleForReading)
        try process.run()
    }

    /// Reads `handle` on a thread of its own until end of file (`waitForEnd` then returns).
    /// For output that must be complete: a readability handler may miss the end of file.
    func readUntilEnd(_ handle: FileHandle) {
        Thread.detachNewThread { [self] in
            while true {
                let chunk = handle.availableData
                lock.lock()
                defer { lock.unlock() }
                if chunk.isEmpty { ended = true; return }
                data.append(chunk)
            }
        }
    }

    var text: String {
        lock.lock()
        defer { lock.unlock() }
        return String(decoding: data, as: UTF8.self)
    }

    /// After `readUntilEnd`: waits until the writer closed the pipe (everything it wrote is in
    /// `text`), at most `timeout`.
    func waitForEnd(timeout: TimeInterval) {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            lock.lock()
            let done = ended
            lock.unlock()
            if done { return }
            Thread.sleep(forTimeInterval: 0.005)
        }
    }
}
