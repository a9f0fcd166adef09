extension UnsafeMutablePointer where Pointee == Int {
    /// `count` zeroed slots of per-thread scratch (a forwarder's, allocated once at start);
    /// the owner deallocates them.
    static func zeroedSlots(_ count: Int) -> UnsafeMutablePointer<Int> {
        let slots = UnsafeMutablePointer<Int>.allocate(capacity: count)
        slots.initialize(repeating: 0, count: count)
        return slots
    }
}
