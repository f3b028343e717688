import Synchronization
import SwitchyardCore
import SwitchyardScheduling

/// The replicas behind one public model name, with their load and health, and the requests
/// waiting for a free slot when every replica is at `max_inflight`.
public final class ModelPool: Sendable {
    public let config: ModelConfig
    /// Every replica ever added, by index (indices stay stable; removed ones are tombstoned).
    public var backends: [Backend] { state.withLock { $0.replicas.map(\.backend) } }
    private let replicaTemplate: ReplicaState
    let origin: ContinuousClock.Instant
    private let state: Mutex<State>

    struct ReplicaState {
        var backend: Backend
        var inflight = 0
        /// Registered through the admin API: gone unless a heartbeat comes before this time.
        var expiresAt: Duration?
        var removed = false
        var active: ActiveHealth
        var outlier: OutlierDetector
        /// Set from a backend's 429/503 `Retry-After`: not routed to before this time.
        var coolingUntil: Duration?
        /// Closed while a managed replica starts, warms up, drains or restarts.
        var gateOpen = true
    }

    struct Waiter {
        var id: UInt64
        var continuation: CheckedContinuation<Void, Never>?
        var signaled = false
    }

    struct State {
        var replicas: [ReplicaState]
        var waiters: [Waiter] = []
        var nextWaiterID: UInt64 = 0
        var rng = SystemRandomNumberGenerator()
    }

    public struct Lease: Sendable {
        public let index: Int
        public let backend: Backend
        public let isProbe: Bool
        public let viaAffinity: Bool
    }

    public enum AcquireError: Error, Sendable {
        /// No replica is healthy (or all were tried already).
        case noReplica
        /// Every replica stayed at its in-flight limit until the queue timeout.
        case queueTimeout
    }

    public init(config: ModelConfig, health: HealthCheckConfig, outlier: OutlierConfig, origin: ContinuousClock.Instant = .now) {
        self.config = config
        self.origin = origin
        let placeholder = Backend(config: BackendConfig(url: "http://127.0.0.1:1"), publicModel: config.name)
        let replica = ReplicaState(
            backend: placeholder,
            active: ActiveHealth(healthyThreshold: health.healthyThreshold, unhealthyThreshold: health.unhealthyThreshold,
                                 initiallyHealthy: !health.enabled),
            outlier: OutlierDetector(consecutiveFailures: outlier.consecutiveFailures, baseEjection: outlier.baseEjection,
                                     maxEjection: outlier.maxEjection)
        )
        replicaTemplate = replica
        var replicas: [ReplicaState] = []
        for backend in config.backends {
            var r = replica
            r.backend = Backend(config: backend, publicModel: config.name)
            r.gateOpen = !backend.managed
            replicas.append(r)
        }
        state = Mutex(State(replicas: replicas))
    }

    var now: Duration { ContinuousClock.now - origin }

    public var name: String { config.name }

    /// Takes a slot on the best replica not in `excluding`, waiting up to `deadline` when all are full.
    public func acquire(excluding: Set<Int> = [], affinityKey: UInt64?, deadline: ContinuousClock.Instant) async throws -> Lease {
        while true {
            enum Step { case lease(Lease), none, wait(UInt64) }
            let now = self.now
            let step: Step = state.withLock { s in
                let eligible = eligibleReplicas(s, excluding: excluding, now: now)
                let choice = Balancer.choose(eligible, affinityKey: affinityKey, balanceFactor: config.routing.balanceFactor, using: &s.rng)
                switch choice {
                case .replica(let id, let affinity):
                    var probe = false
                    if s.replicas[id].outlier.admission(now: now) == .probe {
                        s.replicas[id].outlier.startProbe(now: now)
                        probe = true
                    }
                    s.replicas[id].inflight += 1
                    return .lease(Lease(index: id, backend: s.replicas[id].backend, isProbe: probe, viaAffinity: affinity))
                case .none:
                    return .none
                case .full:
                    let id = s.nextWaiterID
                    s.nextWaiterID += 1
                    s.waiters.append(Waiter(id: id))
                    return .wait(id)
                }
            }
            switch step {
            case .lease(let lease): return lease
            case .none: throw AcquireError.noReplica
            case .wait(let id): try await waitForSlot(id, deadline: deadline)
            }
        }
    }

    private func eligibleReplicas(_ s: State, excluding: Set<Int>, now: Duration) -> [Balancer.Replica] {
        var result: [Balancer.Replica] = []
        result.reserveCapacity(s.replicas.count)
        for (i, r) in s.replicas.enumerated() where !excluding.contains(i) && r.active.isHealthy && r.gateOpen && !r.removed {
            if let expiry = r.expiresAt, expiry <= now { continue }
            if r.outlier.admission(now: now) == .refuse { continue }
            if let until = r.coolingUntil, until > now { continue }
            result.append(Balancer.Replica(id: i, weight: r.backend.weight, inflight: r.inflight, maxInflight: r.backend.maxInflight))
        }
        return result
    }

    private func waitForSlot(_ id: UInt64, deadline: ContinuousClock.Instant) async throws {
        try await withThrowingTaskGroup(of: Bool.self) { group in
            group.addTask {
                await self.suspend(id)
                return true
            }
            group.addTask {
                try? await Task.sleep(until: deadline)
                return false
            }
            let signaled = try await group.next() ?? false
            group.cancelAll()
            if !signaled { throw AcquireError.queueTimeout }
        }
    }

    private func suspend(_ id: UInt64) async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let resumeNow = state.withLock { s -> Bool in
                    guard let i = s.waiters.firstIndex(where: { $0.id == id }) else { return true }
                    if s.waiters[i].signaled {
                        s.waiters.remove(at: i)
                        return true
                    }
                    s.waiters[i].continuation = continuation
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            let continuation = state.withLock { s -> CheckedContinuation<Void, Never>? in
                guard let i = s.waiters.firstIndex(where: { $0.id == id }) else { return nil }
                let waiter = s.waiters.remove(at: i)
                // A wake-up that reached a waiter which then gave up goes to the next one.
                if waiter.signaled { Self.signalNext(&s)?.resume() }
                return waiter.continuation
            }
            continuation?.resume()
        }
    }

    private static func signalNext(_ s: inout State) -> CheckedContinuation<Void, Never>? {
        guard let i = s.waiters.firstIndex(where: { !$0.signaled }) else { return nil }
        if let continuation = s.waiters[i].continuation {
            s.waiters.remove(at: i)
            return continuation
        }
        s.waiters[i].signaled = true
        return nil
    }

    /// Returns the slot and records what the attempt says about the backend's health.
    /// Returns true when this failure ejected the backend.
    @discardableResult
    public func release(_ lease: Lease, outcome: AttemptOutcome) -> Bool {
        let now = self.now
        let (continuation, ejected) = state.withLock { s -> (CheckedContinuation<Void, Never>?, Bool) in
            s.replicas[lease.index].inflight -= 1
            var ejected = false
            switch outcome {
            case .success: s.replicas[lease.index].outlier.recordSuccess()
            case .failure: ejected = s.replicas[lease.index].outlier.recordFailure(now: now)
            case .neutral: if lease.isProbe { s.replicas[lease.index].outlier.cancelProbe() }
            }
            return (Self.signalNext(&s), ejected)
        }
        continuation?.resume()
        return ejected
    }

    /// Opens or closes a replica to new requests (managed replica lifecycle, drain). Requests
    /// already in flight are not affected.
    public func setGate(_ index: Int, open: Bool) {
        let continuation = state.withLock { s -> CheckedContinuation<Void, Never>? in
            s.replicas[index].gateOpen = open
            return open ? Self.signalNext(&s) : nil
        }
        continuation?.resume()
    }

    /// A backend answered 429/503 with `Retry-After`: keep traffic away until then.
    public func coolDown(_ index: Int, for duration: Duration) {
        let now = self.now
        state.withLock { $0.replicas[index].coolingUntil = now + duration }
    }

    /// Records an active health check; returns true when the backend's health flipped.
    @discardableResult
    public func recordHealthCheck(_ index: Int, passed: Bool, error: String? = nil) -> Bool {
        let (flipped, continuation) = state.withLock { s in
            let flipped = s.replicas[index].active.record(passed: passed, error: error)
            return (flipped, flipped && passed ? Self.signalNext(&s) : nil)
        }
        continuation?.resume()
        return flipped
    }

    public struct ReplicaSnapshot: Sendable {
        public let index: Int
        public let backend: Backend
        public let inflight: Int
        public let healthy: Bool
        public let ejected: Bool
        public let gateOpen: Bool
        public let lastError: String?
    }

    /// Live replicas (registered ones whose heartbeat lapsed are left out), with their index.
    public func snapshot() -> [ReplicaSnapshot] {
        let now = self.now
        return state.withLock { s in
            s.replicas.enumerated().compactMap { i, r in
                if r.removed { return nil }
                if let expiry = r.expiresAt, expiry <= now { return nil }
                return ReplicaSnapshot(index: i, backend: r.backend, inflight: r.inflight, healthy: r.active.isHealthy,
                                ejected: r.outlier.admission(now: now) == .refuse, gateOpen: r.gateOpen, lastError: r.active.lastError)
            }
        }
    }

    /// At least one live replica passes its health checks and takes traffic.
    public var isReady: Bool {
        snapshot().contains { $0.healthy && $0.gateOpen }
    }

    /// Adds a backend started elsewhere (a Slurm job, another orchestrator), or renews its lease
    /// when its URL is already registered (a heartbeat). Returns its index and whether it is new.
    /// Registration counts as a passing health check: the server just announced itself.
    public func register(_ config: BackendConfig, ttl: Duration) -> (index: Int, isNew: Bool) {
        let now = self.now
        let backend = Backend(config: config, publicModel: self.config.name)
        let (index, isNew, continuation) = state.withLock { s -> (Int, Bool, CheckedContinuation<Void, Never>?) in
            if let i = s.replicas.firstIndex(where: { !$0.removed && $0.backend.id == backend.id && $0.expiresAt != nil }) {
                s.replicas[i].expiresAt = now + ttl
                return (i, false, nil)
            }
            var r = replicaTemplate
            r.backend = backend
            r.expiresAt = now + ttl
            r.active.record(passed: true)
            s.replicas.append(r)
            return (s.replicas.count - 1, true, Self.signalNext(&s))
        }
        continuation?.resume()
        return (index, isNew)
    }

    /// Tombstones registered backends whose heartbeat lapsed; returns the ones removed.
    @discardableResult
    public func reapExpired() -> [Backend] {
        let now = self.now
        return state.withLock { s in
            var removed: [Backend] = []
            for i in s.replicas.indices where !s.replicas[i].removed {
                if let expiry = s.replicas[i].expiresAt, expiry <= now, s.replicas[i].inflight == 0 {
                    s.replicas[i].removed = true
                    removed.append(s.replicas[i].backend)
                }
            }
            return removed
        }
    }

    /// Removes a registered backend at once (deregistration).
    public func deregister(_ index: Int) {
        state.withLock { s in
            if s.replicas.indices.contains(index), s.replicas[index].expiresAt != nil { s.replicas[index].removed = true }
        }
    }

    public func isLive(_ index: Int) -> Bool {
        state.withLock { s in s.replicas.indices.contains(index) && !s.replicas[index].removed }
    }

    public func inflight(_ index: Int) -> Int { state.withLock { $0.replicas[index].inflight } }
}
