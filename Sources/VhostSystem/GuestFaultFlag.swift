import CVhostShims

/// Why one front-end's session must end, raised from where it is noticed (the SIGBUS handler
/// that contained a fault in its guest memory, or a poll thread that stopped one of its
/// rings) and read by the control thread, which closes that session alone. The word is
/// plain memory because the signal handler writes it; `notifyDescriptor` (the control
/// loop's eventfd, duplicated so that it stays valid as long as any mapping or queue that
/// may raise the flag) wakes the control thread.
public final class GuestFaultFlag: @unchecked Sendable {  // the word is only touched atomically
    public struct Reasons: OptionSet, Sendable {
        public let rawValue: UInt32
        public init(rawValue: UInt32) { self.rawValue = rawValue }
        /// Guest memory or the dirty log could not be faulted in (shrunk file, no hugepages).
        public static let memoryFault = Reasons(rawValue: VHOST_SHIMS_GUARD_MEMORY_FAULT)
        /// A ring kept producing invalid chains and was stopped.
        public static let ringStopped = Reasons(rawValue: 2)
    }

    let word: UnsafeMutablePointer<UInt32>
    private let notify: FileDescriptor?
    public var notifyDescriptor: Int32 { notify?.rawValue ?? -1 }

    /// `notifyDescriptor` is duplicated (-1: nobody to wake; a test reads `raised`).
    public init(notifyDescriptor: Int32 = -1) {
        word = .allocate(capacity: 1)
        word.initialize(to: 0)
        notify = notifyDescriptor >= 0 ? try? FileDescriptor.duplicate(notifyDescriptor) : nil
    }

    deinit { word.deallocate() }

    /// Any thread; wakes the control thread once per new reason.
    public func raise(_ reasons: Reasons) {
        let before = vhost_shims_guard_load(word)
        vhost_shims_guard_raise(word, reasons.rawValue)
        if before & reasons.rawValue != reasons.rawValue, notifyDescriptor >= 0 { EventFD.signal(raw: notifyDescriptor) }
    }

    public var raised: Reasons { Reasons(rawValue: vhost_shims_guard_load(word)) }
}

/// The process-wide SIGBUS containment (CVhostShimsGuard.h): installed once, before the
/// first guest mapping; mappings register with it through `MemoryMapping(guarding:)`.
public enum GuestMemoryGuard {
    /// Installs the handler (idempotent). Errors are returned, not thrown: without the
    /// handler a shrunk guest file still kills the process, as before.
    @discardableResult
    public static func install() -> SystemError? {
        let error = vhost_shims_guard_install()
        return error == 0 ? nil : SystemError("sigaction(SIGBUS)", errno: error)
    }

    /// Guarded mappings now (guest memory regions and dirty logs of every session).
    public static var registeredSlots: Int { Int(vhost_shims_guard_registered()) }

    /// The most guarded mappings the process holds at once; a mapping past it is refused
    /// (the session's request fails, the session and the others go on). Tests lower it.
    public static var slotLimit: Int {
        get { Int(vhost_shims_guard_limit()) }
        set { vhost_shims_guard_set_limit(Int32(clamping: newValue)) }
    }

    /// Whether `MemoryMapping(guarding:)` failed for want of a slot (ENOSPC: mmap has no
    /// such error of its own).
    public static func isRegistryFull(_ error: SystemError) -> Bool { error.errno == ENOSPC }

    /// Faults contained since start (every one cost a session, never the process).
    public static var containedFaults: UInt64 { vhost_shims_guard_contained() }
}
