import Synchronization

/// Why a relay was stopped from outside.
public enum StopReason: Sendable, Equatable {
    case clientClosed
    case firstByteTimeout
    case idleTimeout
    case totalTimeout
}

/// Runs `operation` and cancels it when the client disconnects, when no progress is made for
/// `idle`, or at `deadline`. Progress is reported with ``Progress/touch()``: an atomic store per
/// chunk, so the hot path pays no timer work. One watcher task sleeps until the nearest deadline.
public enum Watchdog {
    public final class Progress: Sendable {
        private let lastNanos: Atomic<Int64>
        private let origin: ContinuousClock.Instant
        private let stop = Mutex<StopReason?>(nil)

        public init() {
            origin = .now
            lastNanos = Atomic(0)
        }

        public func touch() {
            lastNanos.store(Self.nanos(ContinuousClock.now - origin), ordering: .relaxed)
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
    ///   - idle: longest quiet period, measured from the last `touch()` (or the start).
    ///   - idleReason: what an idle expiry means here (first byte or idle gap).
    public static func run<T: Sendable>(
        progress: Progress,
        idle: Duration?,
        idleReason: StopReason = .idleTimeout,
        deadline: ContinuousClock.Instant,
        cancelOnClose subscribe: ((@escaping @Sendable () -> Void) -> ClientConnectionWatch.Subscription)?,
        _ operation: @escaping @Sendable () async throws -> T
    ) async throws -> T {
        progress.touch()
        let closed = OneShotSignal()
        let subscription = subscribe? {
            progress.setStop(.clientClosed)
            closed.fire()
        }
        defer { subscription?.cancel() }
        return try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask { try await operation() }
            if subscription != nil {
                group.addTask {
                    await closed.wait()
                    if Task.isCancelled { return nil }
                    throw Stopped(reason: .clientClosed)
                }
            }
            group.addTask {
                // Sleeps until the nearest deadline; an idle deadline that moved is slept on again.
                while !Task.isCancelled {
                    let now = ContinuousClock.now
                    if now >= deadline {
                        progress.setStop(.totalTimeout)
                        throw Stopped(reason: .totalTimeout)
                    }
                    var wake = deadline
                    if let idle {
                        let idleDeadline = progress.lastActivity + idle
                        if now >= idleDeadline {
                            progress.setStop(idleReason)
                            throw Stopped(reason: idleReason)
                        }
                        wake = min(wake, idleDeadline)
                    }
                    try? await Task.sleep(until: wake)
                }
                return nil
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
