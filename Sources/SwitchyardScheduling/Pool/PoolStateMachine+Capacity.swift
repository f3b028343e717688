import SwitchyardCore

/// How many requests each replica runs at once: configured, discovered from the engine, or
/// learned from its waiting queue, so the excess waits in the lanes rather than in the engine.
extension PoolStateMachine {
    /// What capacity discovery found for a replica.
    package enum Discovered: Sendable, Equatable {
        /// An info endpoint said how many requests the engine runs.
        case engine(EngineCapacity)
        /// No info endpoint, but `/metrics` has a waiting queue: learn the window from it.
        case learn
        /// Neither: `upstream.default_max_inflight`, shrunk by connect timeouts under load.
        case unknown
    }

    /// The capacity in force on a replica, for `/readyz`, `/admin/backends` and metrics.
    package struct CapacityStatus: Sendable, Equatable {
        package var source: CapacitySource
        /// Requests at once now (0 = unlimited).
        package var limit: Int
        package var tokens: Int?

        package init(source: CapacitySource, limit: Int, tokens: Int? = nil) {
            self.source = source
            self.limit = limit
            self.tokens = tokens
        }
    }

    /// Replicas whose capacity is not configured: the ones discovery asks about.
    package func discoverable() -> [(index: Int, backend: Backend)] {
        replicas.enumerated().compactMap { i, r in r.removed || r.capacity.source == .config ? nil : (i, r.backend) }
    }

    /// Puts a discovery result in force (a configured `max_inflight` always wins: nothing
    /// changes then). Returns the status before and after, or nil when nothing applied.
    package mutating func applyCapacity(_ index: Int, _ found: Discovered, now: Duration) -> (before: CapacityStatus, after: CapacityStatus)? {
        guard replicas.indices.contains(index), !replicas[index].removed, replicas[index].capacity.source != .config else { return nil }
        let before = status(replicas[index])
        var capacity: Capacity
        switch found {
        case .engine(let engine):
            capacity = Capacity(source: engine.source, slots: engine.slots, tokens: engine.tokens)
        case .learn:
            // A window already being learned keeps what it learned (the backend came back).
            if replicas[index].capacity.source == .learned { return nil }
            capacity = Capacity(
                source: .learned, slots: LearnedWindow.Settings().initial,
                learned: LearnedWindow(settings: .init(max: defaultMaxInflight), now: now))
        case .unknown:
            if replicas[index].capacity.source == .default { return nil }
            // Pending already ran under the default window: keep what connect timeouts taught it.
            let current = replicas[index].capacity
            capacity = Capacity(
                source: .default, slots: defaultMaxInflight,
                learned: current.source == .pending
                    ? current.learned
                    : LearnedWindow(settings: .init(initial: defaultMaxInflight, max: defaultMaxInflight), now: now))
        }
        replicas[index].capacity = capacity
        replicas[index].window = makeWindow(slots: slotLimit(replicas[index]))
        // A learned window looks at the engine on its own schedule.
        if let look = capacity.learned?.nextLook { arm(look) }
        dispatch(now: now)
        return (before, status(replicas[index]))
    }

    func status(_ r: Replica) -> CapacityStatus {
        CapacityStatus(source: r.capacity.source, limit: r.capacity.limit, tokens: r.capacity.tokens)
    }

    package func capacity(_ index: Int) -> CapacityStatus? {
        replicas.indices.contains(index) ? status(replicas[index]) : nil
    }

    /// A connection to the replica timed out while it was busy with other requests of ours: the
    /// backend cannot accept connections at this rate. A learned or default window halves, and
    /// the request may wait in its lane again (true) instead of failing.
    package mutating func connectTimedOut(_ lease: Lease, now: Duration) -> (requeue: Bool, change: LearnedWindow.Change?) {
        let others = replicas[lease.index].inflight - 1
        guard others > 0, replicas[lease.index].capacity.learned != nil else { return (false, nil) }
        let change = replicas[lease.index].capacity.learned!.connectTimedOut(inflight: replicas[lease.index].inflight, now: now)
        return (true, change)
    }

    /// Latest `/metrics` of a replica (nil `signals` with `unsupported`: it has none). Returns
    /// what it changed in a learned window.
    package mutating func recordSignals(_ index: Int, _ signals: BackendSignals?, unsupported: Bool, now: Duration) -> LearnedWindow.Change? {
        guard replicas.indices.contains(index) else { return nil }
        var change: LearnedWindow.Change?
        if let signals {
            replicas[index].signals = signals
            if replicas[index].capacity.source == .learned, let waiting = signals.waiting {
                change = replicas[index].capacity.learned!.observeEngine(
                    running: signals.running, waiting: waiting, inflight: replicas[index].inflight, now: now)
            }
        }
        replicas[index].metricsUnsupported = unsupported
        dispatch(now: now)
        return change
    }

    /// Learned and default windows grow while they were full and latency holds (no 429/503 from
    /// the backend, p95 TPOT within the tightest lane TPOT SLO).
    mutating func growLearned(now: Duration) -> [(backend: String, change: LearnedWindow.Change)] {
        var changes: [(backend: String, change: LearnedWindow.Change)] = []
        let tpotSLO = lanes.values.compactMap(\.slo.tpot).min()
        for i in replicas.indices where !replicas[i].removed && replicas[i].capacity.learned?.growthDue(now: now) == true {
            let r = replicas[i]
            let saturated = r.peakInflight >= r.capacity.limit
            replicas[i].peakInflight = r.inflight
            var holds = r.samples.overloads == 0
            if let slo = tpotSLO, let p95 = Self.p95(r.samples.tpot) { holds = holds && p95 <= slo.seconds }
            // The adaptive window reads and clears the samples itself when it is on.
            if r.window == nil { replicas[i].samples = Samples() }
            if let change = replicas[i].capacity.learned!.tick(now: now, saturated: saturated, latencyHolds: holds) {
                changes.append((r.backend.id, change))
            }
        }
        return changes
    }
}
