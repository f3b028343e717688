import SwitchyardCore
import SwitchyardScheduling
import Synchronization

/// Replicas joining, leaving, opening and closing; health and snapshots.
extension ModelPool {
    // MARK: - Replica lifecycle

    /// Opens or closes a replica to new requests (managed replica lifecycle, drain). Requests
    /// already in flight are not affected.
    package func setGate(_ index: Int, open: Bool) {
        let resumptions = state.withLock { s -> [Resumption] in
            s.replicas[index].gateOpen = open
            return open ? dispatchLocked(&s, now: now) : []
        }
        resume(resumptions)
    }

    /// A backend answered 429/503 with `Retry-After`: keep traffic away until then.
    package func coolDown(_ index: Int, for duration: Duration) {
        let now = self.now
        state.withLock { s in
            s.replicas[index].coolingUntil = now + duration
            // Requests waiting for this replica may go once it has cooled down.
            if !s.waiting.isEmpty { armLocked(&s, now + duration) }
        }
    }

    /// Records an active health check; returns true when the backend's health flipped.
    @discardableResult
    package func recordHealthCheck(_ index: Int, passed: Bool, error: String? = nil) -> Bool {
        let (flipped, resumptions) = state.withLock { s -> (Bool, [Resumption]) in
            let flipped = s.replicas[index].active.record(passed: passed, error: error)
            if flipped && passed { s.replicas[index].healthyFlips += 1 }
            return (flipped, flipped && passed ? dispatchLocked(&s, now: now) : [])
        }
        resume(resumptions)
        return flipped
    }

    package struct ReplicaSnapshot: Sendable {
        package let index: Int
        package let backend: Backend
        package let inflight: Int
        package let healthy: Bool
        package let ejected: Bool
        package let gateOpen: Bool
        package let lastError: String?
        /// Current slot limit (adaptive window when enabled; 0 = unlimited).
        package let window: Int
        /// The engine's own view from its `/metrics`, when scraped.
        package let engine: BackendSignals?
        /// The capacity in force and where it came from.
        package let capacity: CapacityStatus
    }

    /// Live replicas (registered ones whose heartbeat lapsed are left out), with their index.
    package func snapshot() -> [ReplicaSnapshot] {
        let now = self.now
        return state.withLock { s in
            s.replicas.enumerated().compactMap { i, r in
                if r.removed { return nil }
                if let expiry = r.expiresAt, expiry <= now { return nil }
                return ReplicaSnapshot(
                    index: i, backend: r.backend, inflight: r.inflight, healthy: r.active.isHealthy,
                    ejected: r.outlier.admission(now: now) == .refuse, gateOpen: r.gateOpen, lastError: r.active.lastError,
                    window: limit(r), engine: r.signals, capacity: status(r))
            }
        }
    }

    /// At least one live replica passes its health checks and takes traffic.
    package var isReady: Bool {
        snapshot().contains { $0.healthy && $0.gateOpen }
    }

    /// Requests waiting in a lane.
    package func queued(lane: String) -> Int { state.withLock { $0.scheduler.queued(lane: lane) } }

    /// Adds a backend started elsewhere (a Slurm job, another orchestrator), or renews its lease
    /// when its URL is already registered (a heartbeat). Returns its index and whether it is new.
    /// Registration counts as a passing health check: the server just announced itself.
    package func register(_ config: BackendConfig, ttl: Duration) -> (index: Int, isNew: Bool) {
        let now = self.now
        let backend = Backend(config: config, publicModel: self.config.name)
        let (index, isNew, resumptions) = state.withLock { s -> (Int, Bool, [Resumption]) in
            if let i = s.replicas.firstIndex(where: { !$0.removed && $0.backend.id == backend.id && $0.expiresAt != nil }) {
                s.replicas[i].expiresAt = now + ttl
                return (i, false, [])
            }
            var r = makeReplica(backend)
            r.expiresAt = now + ttl
            r.active.record(passed: true)
            s.replicas.append(r)
            return (s.replicas.count - 1, true, dispatchLocked(&s, now: now))
        }
        resume(resumptions)
        return (index, isNew)
    }

    /// Tombstones registered backends whose heartbeat lapsed; returns the ones removed.
    @discardableResult
    package func reapExpired() -> [Backend] {
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
    package func deregister(_ index: Int) {
        state.withLock { s in
            if s.replicas.indices.contains(index), s.replicas[index].expiresAt != nil { s.replicas[index].removed = true }
        }
    }

    /// A replica that just passed its health check should be asked its capacity again: it came
    /// back after being unhealthy (it may have restarted with other settings), or discovery has
    /// not had an answer from it yet. Its first pass after start is not a comeback.
    package func needsRediscovery(_ index: Int) -> Bool {
        state.withLock { s in
            guard s.replicas.indices.contains(index), s.replicas[index].capacity.source != .config else { return false }
            return s.replicas[index].capacity.source == .pending || s.replicas[index].healthyFlips > 1
        }
    }

    package func isLive(_ index: Int) -> Bool {
        state.withLock { s in s.replicas.indices.contains(index) && !s.replicas[index].removed }
    }

    func metricsUnsupported(_ index: Int) -> Bool { state.withLock { $0.replicas[index].metricsUnsupported } }

    package func inflight(_ index: Int) -> Int { state.withLock { $0.replicas[index].inflight } }
}
