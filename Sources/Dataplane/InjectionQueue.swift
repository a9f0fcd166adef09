import Synchronization

/// Frames the control side wants sent as if they had arrived on a port (the RARP a
/// migrated guest's new port announces). Poll thread 0 drains it between bursts: a
/// relaxed flag check per iteration, the lock only when something is queued. Bounded: front-
/// ends ask for these frames, so they must not be able to grow it.
final class InjectionQueue: Sendable {
    static let capacity = 64

    struct Frame: Sendable {
        var portID: Int
        var bytes: [UInt8]
    }

    private let pending = Atomic<Bool>(false)
    private let frames = Mutex<[Frame]>([])

    /// False (the frame dropped) when `capacity` frames are already waiting.
    func add(_ frame: Frame) -> Bool {
        let added = frames.withLock { queued -> Bool in
            guard queued.count < Self.capacity else { return false }
            queued.append(frame)
            return true
        }
        if added { pending.store(true, ordering: .releasing) }
        return added
    }

    @inline(__always)
    var hasFrames: Bool { pending.load(ordering: .relaxed) }

    /// Takes up to `max` frames (the rest stay for the next iteration).
    func take(max: Int) -> [Frame] {
        frames.withLock { queued in
            let taken = Array(queued.prefix(max))
            queued.removeFirst(taken.count)
            if queued.isEmpty { pending.store(false, ordering: .relaxed) }
            return taken
        }
    }
}

/// The frames a switch builds itself.
public enum AnnouncementFrame {
    /// A RARP "reverse request" from `mac` (RFC 903), as QEMU sends after migration so that
    /// every switch learns where the guest now lives. 60 bytes: the Ethernet minimum.
    public static func rarp(mac: [UInt8]) -> [UInt8] {
        precondition(mac.count == 6)
        var frame: [UInt8] = [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF] + mac + [0x80, 0x35]
        frame += [0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x03]  // Ethernet, IPv4, opcode 3
        frame += mac + [0, 0, 0, 0] + mac + [0, 0, 0, 0]
        frame += [UInt8](repeating: 0, count: 60 - frame.count)
        return frame
    }
}
