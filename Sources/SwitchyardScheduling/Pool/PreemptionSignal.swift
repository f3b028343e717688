import Synchronization

/// Lets the pool stop an in-flight request of a preemptible lane while nothing of its answer has
/// reached the client. Armed → fired (the pool wants the slot back) or committed (bytes went out:
/// it runs to the end). Whichever happens first wins.
package final class PreemptionSignal: Sendable {
    private static let armed = 0, fired = 1, committed = 2
    private let state = Atomic<Int>(PreemptionSignal.armed)
    private let callback = Mutex<(@Sendable () -> Void)?>(nil)

    package init() {}

    /// Asks the holder to stop; false when it already committed (or was already fired).
    @discardableResult
    package func fire() -> Bool {
        guard state.compareExchange(expected: Self.armed, desired: Self.fired, ordering: .acquiringAndReleasing).exchanged else { return false }
        callback.withLock { $0 }?()
        return true
    }

    /// The answer is reaching the client: no preemption from now on. False when it was fired first.
    @discardableResult
    package func commit() -> Bool {
        let (exchanged, original) = state.compareExchange(expected: Self.armed, desired: Self.committed, ordering: .acquiringAndReleasing)
        return exchanged || original == Self.committed
    }

    package var isFired: Bool { state.load(ordering: .acquiring) == Self.fired }
    package var isArmed: Bool { state.load(ordering: .acquiring) == Self.armed }

    /// Calls `onFire` when fired (at once if it already was); `nil` unsubscribes.
    package func subscribe(_ onFire: (@Sendable () -> Void)?) {
        callback.withLock { $0 = onFire }
        if onFire != nil, isFired { onFire?() }
    }
}
