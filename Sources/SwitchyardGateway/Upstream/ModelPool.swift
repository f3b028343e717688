import SwitchyardCore
import SwitchyardScheduling
import Synchronization

/// The replicas behind one public model name: the pool's ``PoolStateMachine`` (every decision)
/// under a lock, the continuations of the requests waiting in its lanes, and the clock. Each
/// method reads the clock once, calls the machine and carries out its ``PoolStateMachine/Effects``
/// outside the lock: resumes or fails waiting requests, fires preemption signals, rings
/// ``doorbell`` so ``PoolTicker`` looks sooner.
package final class ModelPool: Sendable {
    package typealias Ticket = PoolStateMachine.Ticket
    package typealias Lease = PoolStateMachine.Lease
    package typealias AcquireError = PoolStateMachine.AcquireError
    package typealias Usage = PoolStateMachine.Usage
    package typealias Released = PoolStateMachine.Released
    package typealias Discovered = PoolStateMachine.Discovered
    package typealias CapacityStatus = PoolStateMachine.CapacityStatus
    package typealias ReplicaSnapshot = PoolStateMachine.ReplicaSnapshot
    typealias Continuation = CheckedContinuation<Result<Lease, AcquireError>, Never>

    /// The model's settings in force (a reload may change them; see ``reconfigure(model:lanes:tenantWeights:)``).
    package var config: ModelConfig { state.withLock { $0.machine.config } }
    /// The model's public name (never changes).
    package let name: String
    let origin: ContinuousClock.Instant
    let state: Mutex<Shell>
    /// Rung when work is due sooner than the ticker's next look.
    let doorbell = Doorbell()

    struct Shell {
        var machine: PoolStateMachine
        /// Requests waiting in their lane, by the machine's id.
        var continuations: [UInt64: Continuation] = [:]
        /// Decided before their task had suspended: picked up when it does.
        var early: [UInt64: Result<Lease, AcquireError>] = [:]
    }

    /// Effects taken from the machine, carried out outside the lock.
    struct Pending {
        var resumptions: [(Continuation, Result<Lease, AcquireError>)] = []
        var preempt: [(waiting: UInt64, signal: PreemptionSignal)] = []
        var wake = false
    }

    package init(
        config: ModelConfig, health: HealthCheckConfig, outlier: OutlierConfig, lanes: [LaneConfig] = LaneConfig.defaults,
        tenantWeights: [String: Double] = [:], tick: Duration = .milliseconds(10), origin: ContinuousClock.Instant = .now,
        defaultMaxInflight: Int = UpstreamConfig().defaultMaxInflight
    ) {
        let machine = PoolStateMachine(
            config: config, health: health, outlier: outlier, lanes: lanes, tenantWeights: tenantWeights, slack: tick, origin: origin,
            defaultMaxInflight: defaultMaxInflight)
        name = config.name
        self.origin = origin
        state = Mutex(Shell(machine: machine))
    }

    /// Pool time (since the pool was made): the machine's clock, and that of
    /// ``BackendSignals/scrapedAt``.
    package var clock: Duration { ContinuousClock.now - origin }

    /// Runs `body` on the machine under the lock at the current pool time, then carries out
    /// what it decided.
    func update<R>(_ body: (inout PoolStateMachine, Duration) -> R) -> R {
        let now = clock
        let (result, pending) = state.withLock { s -> (R, Pending) in
            let result = body(&s.machine, now)
            return (result, Self.take(&s))
        }
        carryOut(pending)
        return result
    }

    /// Reads the machine under the lock at the current pool time.
    func read<R>(_ body: (PoolStateMachine, Duration) -> R) -> R {
        let now = clock
        return state.withLock { body($0.machine, now) }
    }

    /// The machine's effects, matched to continuations (or kept for a task not yet suspended).
    static func take(_ s: inout Shell) -> Pending {
        let effects = s.machine.takeEffects()
        var pending = Pending(preempt: effects.preempt, wake: effects.wake)
        for (id, result) in effects.decided {
            if let continuation = s.continuations.removeValue(forKey: id) {
                pending.resumptions.append((continuation, result))
            } else {
                s.early[id] = result
            }
        }
        return pending
    }

    func carryOut(_ pending: Pending) {
        for (continuation, result) in pending.resumptions { continuation.resume(returning: result) }
        for (waiting, signal) in pending.preempt where !signal.fire() {
            update { machine, _ in machine.preemptionRefused(waiting) }
        }
        if pending.wake { doorbell.ring() }
    }

    // MARK: - Acquire

    /// Queues the request in its lane and returns a slot on the best replica not in
    /// `ticket.excluding` once the scheduler dispatches it.
    package func acquire(_ ticket: Ticket) async throws(AcquireError) -> Lease {
        switch update({ machine, now in machine.arrive(ticket, now: now) }) {
        case .done(let result): return try result.get()
        case .queued(let id): return try await suspend(id).get()
        }
    }

    /// The event-loop fast path's acquire: a slot now if the request would get one without
    /// waiting or any admission decision, else nil and nothing changed.
    package func tryAcquireNow(_ ticket: Ticket) -> Lease? {
        update { machine, now in machine.leaseNow(ticket, now: now) }
    }

    func suspend(_ id: UInt64) async -> Result<Lease, AcquireError> {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: Continuation) in
                let ready = state.withLock { s -> Result<Lease, AcquireError>? in
                    if let result = s.early.removeValue(forKey: id) { return result }
                    // Cancelled before suspending (the handler may have run already and left
                    // the queue): nothing was decided, so nothing to release.
                    if Task.isCancelled {
                        _ = s.machine.cancel(id)
                        return .failure(.cancelled)
                    }
                    s.continuations[id] = continuation
                    return nil
                }
                if let ready { continuation.resume(returning: ready) }
            }
        } onCancel: {
            let continuation = state.withLock { s -> Continuation? in
                // Already dispatched: the lease is on its way to the task, which releases it.
                guard s.machine.cancel(id) else { return nil }
                return s.continuations.removeValue(forKey: id)
            }
            continuation?.resume(returning: .failure(.cancelled))
        }
    }

    /// The shutdown grace ran out: waiting requests fail with ``AcquireError/shuttingDown``.
    package func shutDown() { update { machine, _ in machine.shutDown() } }

    // MARK: - Release and observation

    /// Returns the slot and records what the attempt says about the backend's health; `usage`
    /// reconciles the tenant's fairness counter.
    @discardableResult
    package func release(_ lease: Lease, outcome: AttemptOutcome, usage: Usage? = nil, preempted: Bool = false) -> Released {
        update { machine, now in machine.release(lease, outcome: outcome, usage: usage, preempted: preempted, now: now) }
    }

    /// Feeds adaptive concurrency and the prefill-rate estimate.
    package func observe(_ lease: Lease, ttft: Duration? = nil, tpot: Duration? = nil, promptTokens: Int? = nil, overloaded: Bool = false) {
        update { machine, _ in machine.observe(lease, ttft: ttft, tpot: tpot, promptTokens: promptTokens, overloaded: overloaded) }
    }

    // MARK: - Clock

    /// Queue depth per lane and each replica's window, for metrics.
    package struct TickReport: Sendable {
        package var queueDepth: [(lane: String, depth: Int)] = []
        package var windows: [(backend: String, window: Int)] = []
        package var capacityChanges: [(backend: String, change: LearnedWindow.Change)] = []
        /// When the pool next has work on the clock; nil: none until ``doorbell`` rings.
        package var next: ContinuousClock.Instant?
    }

    /// The machine's timeouts, preemption and windows (see ``PoolStateMachine/tick(now:)``).
    @discardableResult
    package func tick() -> TickReport {
        let report = update { machine, now in machine.tick(now: now) }
        return TickReport(
            queueDepth: report.queueDepth, windows: report.windows, capacityChanges: report.capacityChanges,
            next: report.next.map { origin + $0 })
    }

    // MARK: - Replicas, capacity and health

    /// Every replica ever added, by index (indices stay stable; removed ones are tombstoned).
    package var backends: [Backend] { read { machine, _ in machine.backends } }

    package func setGate(_ index: Int, open: Bool) { update { machine, now in machine.setGate(index, open: open, now: now) } }

    /// A backend answered 429/503 with `Retry-After`: keep traffic away until then.
    package func coolDown(_ index: Int, for duration: Duration) {
        update { machine, now in machine.coolDown(index, for: duration, now: now) }
    }

    @discardableResult
    package func recordHealthCheck(_ index: Int, passed: Bool, error: String? = nil) -> Bool {
        update { machine, now in machine.recordHealthCheck(index, passed: passed, error: error, now: now) }
    }

    package func snapshot() -> [ReplicaSnapshot] { read { machine, now in machine.snapshot(now: now) } }

    /// At least one live replica passes its health checks and takes traffic.
    package var isReady: Bool { snapshot().contains { $0.healthy && $0.gateOpen } }

    /// Requests waiting in a lane.
    package func queued(lane: String) -> Int { read { machine, _ in machine.queued(lane: lane) } }

    /// Applies a reloaded configuration (see ``PoolStateMachine/reconfigure(model:lanes:tenantWeights:now:)``).
    package func reconfigure(model: ModelConfig, lanes: [LaneConfig], tenantWeights: [String: Double]) -> PoolStateMachine.Reconfigured {
        update { machine, now in machine.reconfigure(model: model, lanes: lanes, tenantWeights: tenantWeights, now: now) }
    }

    /// The backends a discovery source finds now (see ``PoolStateMachine/syncDiscovered(source:backends:now:)``).
    package func syncDiscovered(source: String, backends: [BackendConfig]) -> PoolStateMachine.Reconfigured {
        update { machine, now in machine.syncDiscovered(source: source, backends: backends, now: now) }
    }

    package func register(_ config: BackendConfig, ttl: Duration) -> (index: Int, isNew: Bool) {
        update { machine, now in machine.register(config, ttl: ttl, now: now) }
    }

    @discardableResult
    package func reapExpired() -> [Backend] { update { machine, now in machine.reapExpired(now: now) } }

    /// Registered through the admin API (it has a heartbeat lease).
    package func isRegistered(_ index: Int) -> Bool { read { machine, _ in machine.isRegistered(index) } }

    package func deregister(_ index: Int) { update { machine, _ in machine.deregister(index) } }

    package func needsRediscovery(_ index: Int) -> Bool { read { machine, _ in machine.needsRediscovery(index) } }

    package func isLive(_ index: Int) -> Bool { read { machine, _ in machine.isLive(index) } }

    func metricsUnsupported(_ index: Int) -> Bool { read { machine, _ in machine.metricsUnsupported(index) } }

    package func inflight(_ index: Int) -> Int { read { machine, _ in machine.inflight(index) } }

    package func discoverable() -> [(index: Int, backend: Backend)] { read { machine, _ in machine.discoverable() } }

    @discardableResult
    package func applyCapacity(_ index: Int, _ found: Discovered) -> (before: CapacityStatus, after: CapacityStatus)? {
        update { machine, now in machine.applyCapacity(index, found, now: now) }
    }

    package func capacity(_ index: Int) -> CapacityStatus? { read { machine, _ in machine.capacity(index) } }

    package func connectTimedOut(_ lease: Lease) -> (requeue: Bool, change: LearnedWindow.Change?) {
        update { machine, now in machine.connectTimedOut(lease, now: now) }
    }

    @discardableResult
    package func recordSignals(_ index: Int, _ signals: BackendSignals?, unsupported: Bool = false) -> LearnedWindow.Change? {
        update { machine, now in machine.recordSignals(index, signals, unsupported: unsupported, now: now) }
    }

    package func noteCancelled(_ index: Int, quiet: Duration = .milliseconds(1500)) {
        update { machine, now in machine.noteCancelled(index, quiet: quiet, now: now) }
    }

    package func isQuiet(_ index: Int) -> Bool { read { machine, now in machine.isQuiet(index, now: now) } }

    /// Merging embeddings requests is on for this model (`batching.max_queue_delay`).
    package var coalesces: Bool { config.batching.maxQueueDelay > .zero }

    package func setBatching(_ index: Int, _ check: PoolStateMachine.BatchCheck?) { update { machine, _ in machine.setBatching(index, check) } }

    func batchingDecided(_ index: Int) -> Bool { read { machine, _ in machine.batchingDecided(index) } }

    package func batchingExcluded() -> Set<Int> { read { machine, _ in machine.batchingExcluded() } }

    package var mayCoalesce: Bool { read { machine, _ in machine.mayCoalesce } }
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
