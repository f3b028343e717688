import SwitchyardCore

/// Replicas joining, leaving, opening and closing; health, cooldowns and snapshots.
extension PoolStateMachine {
    /// Opens or closes a replica to new requests (managed replica lifecycle, drain). Requests
    /// already in flight are not affected.
    package mutating func setGate(_ index: Int, open: Bool, now: Duration) {
        replicas[index].gateOpen = open && !replicas[index].retiring
        replicas[index].admitting = false
        // Closed (drained, restarting): its batching is checked again once it reopens.
        if !open { replicas[index].batching = nil }
        if open { dispatch(now: now) }
    }

    /// A backend answered 429/503 with `Retry-After`: keep traffic away until then.
    package mutating func coolDown(_ index: Int, for duration: Duration, now: Duration) {
        replicas[index].coolingUntil = now + duration
        // Requests waiting for this replica may go once it has cooled down.
        if !waiting.isEmpty { arm(now + duration) }
    }

    /// Records an active health check; returns true when the backend's health flipped.
    package mutating func recordHealthCheck(_ index: Int, passed: Bool, error: String? = nil, now: Duration) -> Bool {
        let flipped = replicas[index].active.record(passed: passed, error: error)
        if flipped && passed {
            replicas[index].healthyFlips += 1
            // Back after failing: it may have restarted, so batching is checked again.
            if replicas[index].healthyFlips > 1 { replicas[index].batching = nil }
            dispatch(now: now)
        }
        if !passed { failHopeless(now: now) }
        return flipped
    }

    /// What a replica is doing, for `/admin/backends` and `/readyz`.
    package enum ReplicaState: String, Sendable {
        /// Closed to new requests (drain, or a managed replica not serving) with requests in flight.
        case draining
        /// Closed to new requests and idle.
        case drained
        /// Its active health checks fail.
        case unhealthy
        /// Passive health ejected it after failures (probed again when the ejection ends).
        case ejected
        /// It answered 429/503 and is kept out of rotation until its Retry-After.
        case cooling
        case serving
    }

    package struct ReplicaSnapshot: Sendable {
        package let index: Int
        package let state: ReplicaState
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
        /// Its batching check (nil: not checked).
        package let batching: BatchCheck?
    }

    /// Live replicas (registered ones whose heartbeat lapsed are left out), with their index.
    package func snapshot(now: Duration) -> [ReplicaSnapshot] {
        replicas.enumerated().compactMap { i, r in
            if r.removed { return nil }
            if let expiry = r.expiresAt, expiry <= now { return nil }
            // Closed on purpose comes first: a drained replica's failing health checks are expected.
            let state: ReplicaState =
                if !r.gateOpen {
                    r.inflight > 0 ? .draining : .drained
                } else if !r.active.isHealthy {
                    .unhealthy
                } else if r.outlier.admission(now: now) == .refuse {
                    .ejected
                } else if let until = r.coolingUntil, until > now {
                    .cooling
                } else {
                    .serving
                }
            return ReplicaSnapshot(
                index: i, state: state, backend: r.backend, inflight: r.inflight, healthy: r.active.isHealthy,
                ejected: r.outlier.admission(now: now) == .refuse, gateOpen: r.gateOpen, lastError: r.active.lastError,
                window: limit(r), engine: r.signals, capacity: status(r), batching: r.batching)
        }
    }

    /// Adds a backend started elsewhere (a Slurm job, another orchestrator), or renews its lease
    /// when its URL is already registered (a heartbeat). Returns its index and whether it is new.
    /// Registration counts as a passing health check: the server just announced itself.
    package mutating func register(_ config: BackendConfig, ttl: Duration, now: Duration) -> (index: Int, isNew: Bool) {
        let backend = Backend(config: config, publicModel: self.config.name)
        if let i = replicas.firstIndex(where: { !$0.removed && $0.backend.id == backend.id && $0.expiresAt != nil }) {
            replicas[i].expiresAt = now + ttl
            return (i, false)
        }
        var r = makeReplica(backend, now: now)
        r.expiresAt = now + ttl
        r.active.record(passed: true)
        replicas.append(r)
        dispatch(now: now)
        return (replicas.count - 1, true)
    }

    /// Tombstones registered backends whose heartbeat lapsed, and backends a reload left out,
    /// once idle; returns the ones removed.
    package mutating func reapExpired(now: Duration) -> [Backend] {
        var removed: [Backend] = []
        for i in replicas.indices where !replicas[i].removed {
            let lapsed = replicas[i].expiresAt.map { $0 <= now } ?? false
            if lapsed || replicas[i].retiring, replicas[i].inflight == 0 {
                replicas[i].removed = true
                removed.append(replicas[i].backend)
            }
        }
        return removed
    }

    package func isRegistered(_ index: Int) -> Bool { replicas.indices.contains(index) && replicas[index].expiresAt != nil }

    /// Removes a registered backend at once (deregistration).
    package mutating func deregister(_ index: Int) {
        if replicas.indices.contains(index), replicas[index].expiresAt != nil { replicas[index].removed = true }
    }

    /// A replica that just passed its health check should be asked its capacity again: it came
    /// back after being unhealthy (it may have restarted with other settings), or discovery has
    /// not had an answer from it yet. Its first pass after start is not a comeback.
    package func needsRediscovery(_ index: Int) -> Bool {
        guard replicas.indices.contains(index), replicas[index].capacity.source != .config else { return false }
        return replicas[index].capacity.source == .pending || replicas[index].healthyFlips > 1
    }

    package func isLive(_ index: Int) -> Bool { replicas.indices.contains(index) && !replicas[index].removed }

    /// Records a replica's batching check (see ``BatchCheck``).
    package mutating func setBatching(_ index: Int, _ check: BatchCheck?) {
        guard replicas.indices.contains(index) else { return }
        replicas[index].batching = check
    }

    /// The replica's batching was checked since it (re)started.
    package func batchingDecided(_ index: Int) -> Bool { replicas.indices.contains(index) && replicas[index].batching != nil }

    /// Replicas that must not take a merged embeddings request (variant or not checked yet).
    package func batchingExcluded() -> Set<Int> {
        Set(replicas.indices.filter { replicas[$0].batching != .invariant })
    }

    /// Some live replica was found batch-invariant: merging embeddings requests is allowed.
    package var mayCoalesce: Bool {
        replicas.contains { !$0.removed && $0.batching == .invariant }
    }

    package func metricsUnsupported(_ index: Int) -> Bool { replicas[index].metricsUnsupported }

    package func inflight(_ index: Int) -> Int { replicas[index].inflight }

    /// A request on this replica was cancelled (preempted, or its client left). llama.cpp notices
    /// a closed connection of a non-streaming request only after a second with no other result
    /// on its queue, and every `/metrics` scrape is such a result: scraping pauses meanwhile, or
    /// the cancelled generation runs on and holds the slot that was just freed.
    package mutating func noteCancelled(_ index: Int, quiet: Duration, now: Duration) {
        replicas[index].quietUntil = now + quiet
    }

    /// True while scraping this replica should pause (a cancellation is being noticed).
    package func isQuiet(_ index: Int, now: Duration) -> Bool {
        replicas[index].quietUntil.map { $0 > now } ?? false
    }
}
