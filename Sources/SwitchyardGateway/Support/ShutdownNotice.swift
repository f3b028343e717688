import Synchronization

/// Tells whoever subscribed that the shutdown grace ran out: open exchanges end (a stream with an
/// error event, anything else with 503 `server_shutdown`) instead of being cut off.
package final class ShutdownNotice: Sendable {
    private struct State {
        var fired = false
        var next: UInt64 = 0
        var subscribers: [UInt64: @Sendable () -> Void] = [:]
    }

    private let state = Mutex(State())

    package init() {}

    package var isFired: Bool { state.withLock { $0.fired } }

    /// Calls `onFire` when the notice fires; returns the subscription, or nil when it already
    /// fired (the caller acts at once).
    func subscribe(_ onFire: @escaping @Sendable () -> Void) -> UInt64? {
        state.withLock { s in
            guard !s.fired else { return nil }
            let id = s.next
            s.next += 1
            s.subscribers[id] = onFire
            return id
        }
    }

    func unsubscribe(_ id: UInt64) {
        _ = state.withLock { $0.subscribers.removeValue(forKey: id) }
    }

    /// Fires once: every subscriber is called (outside the lock).
    package func fire() {
        let subscribers = state.withLock { s -> [@Sendable () -> Void] in
            guard !s.fired else { return [] }
            s.fired = true
            defer { s.subscribers = [:] }
            return Array(s.subscribers.values)
        }
        for subscriber in subscribers { subscriber() }
    }
}
