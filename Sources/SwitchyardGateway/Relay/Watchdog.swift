import ServiceLifecycle
import Synchronization

/// Why a relay was stopped from outside.
public enum StopReason: Sendable, Equatable {
    case clientClosed
    case firstByteTimeout
    case idleTimeout
    case totalTimeout
    /// The pool took the slot back for a higher-priority request (nothing sent to the client yet).
    case preempted
}

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

/// Runs an upstream operation and cancels it when the client disconnects, when no progress is
/// made for the idle limit, or at the deadline.
public enum Watchdog {
    public final class Progress: Sendable {
        private let lastNanos = Atomic<Int64>(0)
        /// Current idle limit in nanoseconds (0 = none) and what its expiry means.
        private let idleNanos = Atomic<Int64>(0)
        private let idleIsFirstByte = Atomic<Bool>(false)
        private let origin: ContinuousClock.Instant
        private let stop = Mutex<StopReason?>(nil)

        public init() {
            origin = .now
        }

        public func touch() {
            lastNanos.store(Self.nanos(ContinuousClock.now - origin), ordering: .relaxed)
        }

        /// Sets the quiet period allowed from now on (first byte, then the gap between chunks).
        public func setIdle(_ limit: Duration?, reason: StopReason) {
            touch()
            idleIsFirstByte.store(reason == .firstByteTimeout, ordering: .relaxed)
            idleNanos.store(limit.map(Self.nanos) ?? 0, ordering: .relaxed)
        }

        var idleLimit: (Duration, StopReason)? {
            let nanos = idleNanos.load(ordering: .relaxed)
            guard nanos > 0 else { return nil }
            return (.nanoseconds(nanos), idleIsFirstByte.load(ordering: .relaxed) ? .firstByteTimeout : .idleTimeout)
        }

        var lastActivity: ContinuousClock.Instant {
            origin + .nanoseconds(lastNanos.load(ordering: .relaxed))
        }

        /// Records the first reason to stop; later ones are ignored.
        func setStop(_ reason: StopReason) {
            stop.withLock { if $0 == nil { $0 = reason } }
        }

        public var stopReason: StopReason? { stop.withLock { $0 } }

        static func nanos(_ d: Duration) -> Int64 {
            let (s, atto) = d.components
            return s * 1_000_000_000 + atto / 1_000_000_000
        }
    }

    public struct Stopped: Error, Sendable {
        public let reason: StopReason
    }

    /// - Parameters:
    ///   - idle: longest quiet period, from the last `touch()` (or the start); changeable during
    ///     the operation with ``Progress/setIdle(_:reason:)``.
    ///   - idleReason: what an idle expiry means at the start (first byte or idle gap).
    public static func run<T: Sendable>(
        monitor: TimeoutMonitor,
        progress: Progress,
        idle: Duration?,
        idleReason: StopReason = .idleTimeout,
        deadline: ContinuousClock.Instant,
        cancelOnClose subscribe: ((@escaping @Sendable () -> Void) -> ClientConnectionWatch.Subscription)?,
        preemption: PreemptionSignal? = nil,
        _ operation: @escaping @Sendable () async throws -> T
    ) async throws -> T {
        progress.setIdle(idle, reason: idleReason)
        let stopped = OneShotSignal()
        let entry = monitor.register(.init(progress: progress, deadline: deadline) { reason in
            progress.setStop(reason)
            stopped.fire()
        })
        defer { monitor.unregister(entry) }
        let subscription = subscribe? {
            progress.setStop(.clientClosed)
            stopped.fire()
        }
        defer { subscription?.cancel() }
        preemption?.subscribe {
            progress.setStop(.preempted)
            stopped.fire()
        }
        defer { preemption?.subscribe(nil) }
        return try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask { try await operation() }
            group.addTask {
                await stopped.wait()
                guard !Task.isCancelled, let reason = progress.stopReason else { return nil }
                throw Stopped(reason: reason)
            }
            defer { group.cancelAll() }
            while let result = try await group.next() {
                if let value = result { return value }
            }
            throw CancellationError()
        }
    }
}

/// A one-time event that any number of tasks can wait for; waiting is cancellable.
final class OneShotSignal: Sendable {
    private struct State {
        var fired = false
        var waiters: [UInt64: CheckedContinuation<Void, Never>] = [:]
        var nextID: UInt64 = 0
    }

    private let state = Mutex(State())

    func fire() {
        let waiters = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            s.fired = true
            defer { s.waiters = [:] }
            return Array(s.waiters.values)
        }
        waiters.forEach { $0.resume() }
    }

    /// Returns when fired, or when the waiting task is cancelled.
    func wait() async {
        let id = state.withLock { s -> UInt64 in
            s.nextID += 1
            return s.nextID
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let resumeNow = state.withLock { s -> Bool in
                    if s.fired || Task.isCancelled { return true }
                    s.waiters[id] = continuation
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            state.withLock { $0.waiters.removeValue(forKey: id) }?.resume()
        }
    }
}
