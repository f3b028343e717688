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
        let entry = monitor.register(
            .init(progress: progress, deadline: deadline) { reason in
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
