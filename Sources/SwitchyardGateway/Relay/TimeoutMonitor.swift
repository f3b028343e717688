import ServiceLifecycle
import Synchronization

/// Checks the deadlines of every in-flight upstream operation from one loop, so requests pay no
/// timer of their own: registering is a lock and a dictionary insert, progress is an atomic store.
/// Precision is `tick` (timeouts fire up to one tick late).
public final class TimeoutMonitor: Service, Sendable {
    struct Entry {
        let progress: Watchdog.Progress
        let deadline: ContinuousClock.Instant
        let fire: @Sendable (StopReason) -> Void
    }

    private let entries = Mutex<[UInt64: Entry]>([:])
    private let nextID = Atomic<UInt64>(0)
    let tick: Duration

    public init(tick: Duration = .milliseconds(10)) {
        self.tick = tick
    }

    func register(_ entry: Entry) -> UInt64 {
        let id = nextID.add(1, ordering: .relaxed).newValue
        entries.withLock { $0[id] = entry }
        return id
    }

    func unregister(_ id: UInt64) {
        entries.withLock { _ = $0.removeValue(forKey: id) }
    }

    /// Fires every entry whose deadline or idle limit has passed; returns how many fired.
    @discardableResult
    func check(now: ContinuousClock.Instant = .now) -> Int {
        let expired = entries.withLock { map -> [(Entry, StopReason)] in
            var expired: [(Entry, StopReason)] = []
            for (id, entry) in map {
                var reason: StopReason?
                if now >= entry.deadline {
                    reason = .totalTimeout
                } else if let (limit, idleReason) = entry.progress.idleLimit, now >= entry.progress.lastActivity + limit {
                    reason = idleReason
                }
                if let reason {
                    expired.append((entry, reason))
                    map.removeValue(forKey: id)
                }
            }
            return expired
        }
        for (entry, reason) in expired { entry.fire(reason) }
        return expired.count
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                try? await Task.sleep(for: self.tick)
                self.check()
            }
        }
    }
}
