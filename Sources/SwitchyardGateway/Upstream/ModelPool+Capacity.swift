import SwitchyardCore
import SwitchyardScheduling
import Synchronization

/// How many requests each replica runs at once: configured, discovered from the engine, or
/// learned from its waiting queue, so the excess waits in the lanes rather than in the engine.
extension ModelPool {
    /// What capacity discovery found for a replica (see ``CapacityDiscovery``).
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
    }

    /// Replicas whose capacity is not configured: the ones discovery asks about.
    package func discoverable() -> [(index: Int, backend: Backend)] {
        state.withLock { s in
            s.replicas.enumerated().compactMap { i, r in r.removed || r.capacity.source == .config ? nil : (i, r.backend) }
        }
    }

    /// Puts a discovery result in force (a configured `max_inflight` always wins: nothing
    /// changes then). Returns the status before and after, or nil when nothing applied.
    @discardableResult
    package func applyCapacity(_ index: Int, _ found: Discovered) -> (before: CapacityStatus, after: CapacityStatus)? {
        let now = self.now
        let (result, resumptions) = state.withLock { s -> ((before: CapacityStatus, after: CapacityStatus)?, [Resumption]) in
            guard s.replicas.indices.contains(index), !s.replicas[index].removed, s.replicas[index].capacity.source != .config else {
                return (nil, [])
            }
            let before = status(s.replicas[index])
            var capacity: Capacity
            switch found {
            case .engine(let engine):
                capacity = Capacity(source: engine.source, slots: engine.slots, tokens: engine.tokens)
            case .learn:
                // A window already being learned keeps what it learned (the backend came back).
                if s.replicas[index].capacity.source == .learned { return (nil, []) }
                capacity = Capacity(
                    source: .learned, slots: LearnedWindow.Settings().initial,
                    learned: LearnedWindow(settings: .init(max: defaultMaxInflight), now: now))
            case .unknown:
                if s.replicas[index].capacity.source == .default { return (nil, []) }
                // Pending already ran under the default window: keep what connect timeouts taught it.
                let current = s.replicas[index].capacity
                capacity = Capacity(
                    source: .default, slots: defaultMaxInflight,
                    learned: current.source == .pending
                        ? current.learned
                        : LearnedWindow(settings: .init(initial: defaultMaxInflight, max: defaultMaxInflight), now: now))
            }
            s.replicas[index].capacity = capacity
            s.replicas[index].window = Self.makeWindow(config: config, lanes: Array(lanes.values), slots: slotLimit(s.replicas[index]))
            return ((before, status(s.replicas[index])), dispatchLocked(&s, now: now))
        }
        resume(resumptions)
        return result
    }

    func status(_ r: ReplicaState) -> CapacityStatus {
        CapacityStatus(source: r.capacity.source, limit: r.capacity.limit, tokens: r.capacity.tokens)
    }

    package func capacity(_ index: Int) -> CapacityStatus? {
        state.withLock { s in s.replicas.indices.contains(index) ? status(s.replicas[index]) : nil }
    }

    /// A connection to the replica timed out while it was busy with other requests of ours: the
    /// backend cannot accept connections at this rate. A learned or default window halves, and
    /// the request may wait in its lane again (true) instead of failing.
    package func connectTimedOut(_ lease: Lease) -> (requeue: Bool, change: LearnedWindow.Change?) {
        let now = self.now
        return state.withLock { s in
            let others = s.replicas[lease.index].inflight - 1
            guard others > 0, s.replicas[lease.index].capacity.learned != nil else { return (false, nil) }
            let change = s.replicas[lease.index].capacity.learned!.connectTimedOut(inflight: s.replicas[lease.index].inflight, now: now)
            return (true, change)
        }
    }

    /// Feeds a scrape of the engine's metrics to a learned window.
    func learn(_ s: inout State, _ index: Int, from signals: BackendSignals, now: Duration) -> LearnedWindow.Change? {
        guard s.replicas[index].capacity.source == .learned, let waiting = signals.waiting else { return nil }
        return s.replicas[index].capacity.learned!.observeEngine(
            running: signals.running, waiting: waiting,
            inflight: s.replicas[index].inflight, now: now)
    }

    /// Every tick: learned and default windows grow while they were full and latency holds
    /// (no 429/503 from the backend, p95 TPOT within the tightest lane TPOT SLO).
    func growLearned(_ s: inout State, now: Duration) -> [(backend: String, change: LearnedWindow.Change)] {
        var changes: [(backend: String, change: LearnedWindow.Change)] = []
        let tpotSLO = lanes.values.compactMap(\.slo.tpot).min()
        for i in s.replicas.indices where !s.replicas[i].removed && s.replicas[i].capacity.learned?.growthDue(now: now) == true {
            let r = s.replicas[i]
            let saturated = r.peakInflight >= r.capacity.limit
            s.replicas[i].peakInflight = r.inflight
            var holds = r.samples.overloads == 0
            if let slo = tpotSLO, let p95 = Self.p95(r.samples.tpot) { holds = holds && p95 <= slo.seconds }
            // The adaptive window reads and clears the samples itself when it is on.
            if r.window == nil { s.replicas[i].samples = Samples() }
            if let change = s.replicas[i].capacity.learned!.tick(now: now, saturated: saturated, latencyHolds: holds) {
                changes.append((r.backend.id, change))
            }
        }
        return changes
    }
}

extension CapacitySource {
    /// How the capacity reads in the start-up log and `config check`.
    package var explanation: String {
        switch self {
        case .config: "max_inflight in the configuration"
        case .props: "llama.cpp /props total_slots"
        case .serverInfo: "SGLang /get_server_info max_running_requests"
        case .info: "TGI /info max_concurrent_requests"
        case .learned: "learned from the engine's waiting queue in /metrics"
        case .default: "upstream.default_max_inflight (the backend reports no capacity and no waiting queue)"
        case .pending: "discovery pending"
        }
    }
}
