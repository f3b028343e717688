import Synchronization
import SwitchyardCore
import SwitchyardScheduling

/// The replicas behind one public model name, with their load and health, and the lane
/// scheduler in front of them: requests wait in ``LaneScheduler`` (priority bands, min_share,
/// VTC fairness between tenants, deadline admission) and are dispatched when a replica has a free
/// slot in its window, room in its token budget and KV-cache headroom.
public final class ModelPool: Sendable {
    public let config: ModelConfig
    /// Lane policies by name.
    public let lanes: [String: LaneConfig]
    /// Every replica ever added, by index (indices stay stable; removed ones are tombstoned).
    public var backends: [Backend] { state.withLock { $0.replicas.map(\.backend) } }
    private let replicaTemplate: ReplicaState
    let origin: ContinuousClock.Instant
    private let state: Mutex<State>
    /// Lanes whose queued requests may preempt in-flight work of a lower, preemptible lane.
    private let urgentLanes: Set<String>
    private let tickInterval: Duration

    struct ReplicaState {
        var backend: Backend
        var inflight = 0
        /// Prompt + max output tokens of the requests in flight (token budget).
        var inflightTokens = 0
        /// Registered through the admin API: gone unless a heartbeat comes before this time.
        var expiresAt: Duration?
        var removed = false
        var active: ActiveHealth
        var outlier: OutlierDetector
        /// Set from a backend's 429/503 `Retry-After`: not routed to before this time.
        var coolingUntil: Duration?
        /// Closed while a managed replica starts, warms up, drains or restarts.
        var gateOpen = true
        var window: AdaptiveConcurrency?
        var signals: BackendSignals?
        /// The backend has no `/metrics` (404): memory headroom is not enforced for it.
        var metricsUnsupported = false
        var leases: [UInt64: ActiveLease] = [:]
        var samples = Samples()
        var lastDeferred: Double?
        var lastPreemptions: Double?
        /// No `/metrics` scrape before this time (see ``noteCancelled(_:)``).
        var quietUntil: Duration?
    }

    struct ActiveLease {
        var lane: String
        var priority: Int
        var started: Duration
        var signal: PreemptionSignal?
    }

    /// What one adaptive-concurrency window observed on a replica.
    struct Samples {
        var ttft: [Double] = []
        var tpot: [Double] = []
        var overloads = 0
    }

    struct Waiting {
        var ticket: Ticket
        var request: LaneScheduler.Request
        var priority: Int
        var continuation: CheckedContinuation<Result<Lease, AcquireError>, Never>?
        var result: Result<Lease, AcquireError>?
        var giveUpAt: Duration
        var preemptionAsked = false
    }

    struct State {
        var replicas: [ReplicaState]
        var scheduler: LaneScheduler
        var waiting: [UInt64: Waiting] = [:]
        /// Waiting requests of urgent lanes with a deadline (checked for preemption every tick).
        var urgent: Set<UInt64> = []
        var nextID: UInt64 = 0
        var rng = SystemRandomNumberGenerator()
        /// Moving average of a request's time on a replica (seconds).
        var serviceSeconds: Double?
        /// The same per lane: how long a request of that lane usually holds its slot.
        var serviceByLane: [String: Double] = [:]
        /// Moving average of prompt tokens per second of server-side time to first token.
        var prefillTokensPerSecond: Double?
        var lastAdaptive: Duration = .zero
        var lastGiveUpCheck: Duration = .zero
    }

    typealias Resumption = (CheckedContinuation<Result<Lease, AcquireError>, Never>, Result<Lease, AcquireError>)

    /// What the scheduler needs to know about a request.
    public struct Ticket: Sendable {
        public var lane: String
        public var tenant: String
        public var inputTokens: Int
        public var maxOutputTokens: Int
        /// Latest start that can still meet the lane's deadline; past it, the lane's timeout action.
        public var startBy: ContinuousClock.Instant?
        /// Waiting ends here whatever the lane says (the request's total timeout).
        public var giveUpAt: ContinuousClock.Instant
        public var affinityKey: UInt64?
        /// Replicas already tried by this request.
        public var excluding: Set<Int> = []
        /// Times this request was preempted so far.
        public var preemptions = 0
        /// A preempted request going back: first in its tenant's queue, no admission check.
        public var requeue = false

        public init(lane: String, tenant: String, inputTokens: Int, maxOutputTokens: Int, startBy: ContinuousClock.Instant?,
                    giveUpAt: ContinuousClock.Instant, affinityKey: UInt64? = nil) {
            self.lane = lane
            self.tenant = tenant
            self.inputTokens = inputTokens
            self.maxOutputTokens = maxOutputTokens
            self.startBy = startBy
            self.giveUpAt = giveUpAt
            self.affinityKey = affinityKey
        }
    }

    public struct Lease: Sendable {
        public let index: Int
        public let backend: Backend
        public let isProbe: Bool
        public let viaAffinity: Bool
        let id: UInt64
        let request: LaneScheduler.Request
        /// Set for preemptible lanes while the request may still be preempted.
        public let preemption: PreemptionSignal?
        let started: Duration
        /// Dispatched by the scheduler (its tenant was charged): usage reconciles the charge.
        let charged: Bool
    }

    public enum AcquireError: Error, Sendable {
        /// No replica is healthy (or all were tried already).
        case noReplica
        /// Queued past the lane's deadline (timeout action reject) or the request's total timeout.
        case queueTimeout
        /// Refused at arrival: `reason` is the `switchyard_shed_total` label.
        case rejected(APIError, reason: String)
        case cancelled
    }

    private static let placeholder = LaneScheduler(lanes: [])

    public init(config: ModelConfig, health: HealthCheckConfig, outlier: OutlierConfig, lanes: [LaneConfig] = LaneConfig.defaults,
                tenantWeights: [String: Double] = [:], tick: Duration = .milliseconds(10), origin: ContinuousClock.Instant = .now) {
        self.config = config
        self.origin = origin
        tickInterval = tick
        self.lanes = Dictionary(lanes.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        let worstPreemptible = lanes.filter(\.preemptible).map(\.priority).max()
        urgentLanes = Set(lanes.filter { lane in !lane.preemptible && worstPreemptible.map { lane.priority < $0 } ?? false }.map(\.name))
        let placeholder = Backend(config: BackendConfig(url: "http://127.0.0.1:1"), publicModel: config.name)
        let replica = ReplicaState(
            backend: placeholder,
            active: ActiveHealth(healthyThreshold: health.healthyThreshold, unhealthyThreshold: health.unhealthyThreshold,
                                 initiallyHealthy: !health.enabled),
            outlier: OutlierDetector(consecutiveFailures: outlier.consecutiveFailures, baseEjection: outlier.baseEjection,
                                     maxEjection: outlier.maxEjection)
        )
        replicaTemplate = replica
        let scheduler = LaneScheduler(
            lanes: lanes.map { LaneScheduler.Lane(name: $0.name, band: $0.priority, minShare: $0.minShare,
                                                   maxQueueSize: $0.queue.maxSize == 0 ? .max : $0.queue.maxSize,
                                                   timeoutAction: $0.queue.timeoutAction == .delay ? .delay : .reject) },
            tenantWeights: tenantWeights)
        var state = State(replicas: [], scheduler: scheduler)
        for backend in config.backends {
            var r = replica
            r.backend = Backend(config: backend, publicModel: config.name)
            r.gateOpen = !backend.managed
            state.replicas.append(r)
        }
        for i in state.replicas.indices { state.replicas[i].window = Self.makeWindow(config: config, lanes: lanes, replica: state.replicas[i]) }
        self.state = Mutex(state)
    }

    /// The AIMD window of a replica, between `min` and its slot limit; nil when disabled or unlimited.
    private static func makeWindow(config: ModelConfig, lanes: [LaneConfig], replica: ReplicaState) -> AdaptiveConcurrency? {
        guard config.adaptiveConcurrency.enabled else { return nil }
        let slots = staticLimit(config: config, backend: replica.backend)
        guard slots > 0 else { return nil }
        return AdaptiveConcurrency(min: config.adaptiveConcurrency.min, max: slots,
                                   tpotSLO: lanes.compactMap(\.slo.tpot).min(), ttftSLO: lanes.compactMap(\.slo.ttft).min())
    }

    /// Slots of a replica before adaptation: `max_inflight` capped by `batching.max_batch_size` (0 = unlimited).
    static func staticLimit(config: ModelConfig, backend: Backend) -> Int {
        var cap = backend.maxInflight
        if let size = config.batching.maxBatchSize { cap = cap == 0 ? size : min(cap, size) }
        return cap
    }

    private func limit(_ r: ReplicaState) -> Int {
        let cap = Self.staticLimit(config: config, backend: r.backend)
        guard cap > 0, let window = r.window else { return cap }
        return min(cap, window.window)
    }

    var now: Duration { ContinuousClock.now - origin }

    public var name: String { config.name }

    // MARK: - Acquire and release

    /// Queues the request in its lane and returns a slot on the best replica not in
    /// `ticket.excluding` once the scheduler dispatches it.
    public func acquire(_ ticket: Ticket) async throws(AcquireError) -> Lease {
        enum Step { case done(Result<Lease, AcquireError>), wait(UInt64) }
        let now = self.now
        let (step, resumptions) = state.withLock { s -> (Step, [Resumption]) in
            guard let lane = lanes[ticket.lane] else {
                return (.done(.failure(.rejected(.invalidRequest("Unknown lane '\(ticket.lane)'.", param: "x-switchyard-lane"), reason: "unknown_lane"))), [])
            }
            guard !eligibleReplicas(s, excluding: ticket.excluding, now: now).isEmpty else { return (.done(.failure(.noReplica)), []) }
            if lane.sheddable, !ticket.requeue, let level = saturation(s, now: now), level >= 1 {
                return (.done(.failure(.rejected(APIError(status: 503, message: "Model '\(config.name)' is saturated (engine queue or KV cache full on every replica); the \(lane.name) lane is shed first. Retry later.",
                                                          type: "server_error", code: "saturated", retryAfterSeconds: 1), reason: "saturated"))), [])
            }
            let id = s.nextID
            s.nextID += 1
            let request = LaneScheduler.Request(id: id, lane: ticket.lane, tenant: ticket.tenant, inputTokens: ticket.inputTokens,
                                                maxOutputTokens: ticket.maxOutputTokens, deadline: ticket.startBy.map { $0 - origin })
            // Nobody waits: no ordering to decide, take a slot at once (the common, uncontended
            // case). Fairness counters only matter between backlogged tenants, so nothing is charged.
            if s.scheduler.queuedTotal == 0, !ticket.requeue {
                let candidates = dispatchable(s, excluding: ticket.excluding, tokens: request.inputTokens + request.maxOutputTokens, now: now)
                if case .replica(let index, let affinity) = Balancer.choose(candidates, affinityKey: ticket.affinityKey,
                                                                            balanceFactor: config.routing.balanceFactor, using: &s.rng) {
                    return (.done(.success(lease(&s, request, ticket: ticket, priority: lane.priority, index: index, affinity: affinity,
                                                 charged: false, now: now))), [])
                }
            }
            if ticket.requeue {
                s.scheduler.requeueAtFront(request)
            } else {
                switch s.scheduler.enqueue(request, now: now, capacity: capacity(s, priority: lane.priority, now: now)) {
                case .queued: break
                case .rejected(let rejection): return (.done(.failure(Self.error(for: rejection, lane: lane, model: config.name))), [])
                }
            }
            s.waiting[id] = Waiting(ticket: ticket, request: request, priority: lane.priority, giveUpAt: ticket.giveUpAt - origin)
            if urgentLanes.contains(lane.name), request.deadline != nil { s.urgent.insert(id) }
            let resumptions = dispatchLocked(&s, now: now)
            if let result = s.waiting[id]?.result {
                s.waiting.removeValue(forKey: id)
                s.urgent.remove(id)
                return (.done(result), resumptions)
            }
            return (.wait(id), resumptions)
        }
        resume(resumptions)
        switch step {
        case .done(let result): return try result.get()
        case .wait(let id): return try await suspend(id).get()
        }
    }

    static func error(for rejection: LaneScheduler.Rejection, lane: LaneConfig, model: String) -> AcquireError {
        switch rejection {
        case .unknownLane:
            return .rejected(.invalidRequest("Unknown lane '\(lane.name)'.", param: "x-switchyard-lane"), reason: "unknown_lane")
        case .queueFull(let limit):
            return .rejected(APIError(status: 429, message: "The \(lane.name) queue of '\(model)' is full (\(limit) waiting). Retry later.",
                                      type: "rate_limit_error", code: "queue_full", retryAfterSeconds: 1), reason: "queue_full")
        case .deadlineUnreachable(let wait):
            let seconds = max(1, Int(wait.seconds.rounded(.up)))
            return .rejected(APIError(status: 503, message: "The \(lane.name) lane of '\(model)' cannot start this request before its deadline (estimated wait \(wait.formatted)). Retry later or use a lane with a longer deadline.",
                                      type: "server_error", code: "deadline_unreachable", retryAfterSeconds: seconds), reason: "deadline")
        case .timedOut:
            return .queueTimeout
        }
    }

    private func suspend(_ id: UInt64) async -> Result<Lease, AcquireError> {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Result<Lease, AcquireError>, Never>) in
                let ready = state.withLock { s -> Result<Lease, AcquireError>? in
                    guard let waiting = s.waiting[id] else { return .failure(.cancelled) }
                    if let result = waiting.result {
                        s.waiting.removeValue(forKey: id)
                        s.urgent.remove(id)
                        return result
                    }
                    if Task.isCancelled {
                        _ = s.scheduler.remove(id: id, lane: waiting.request.lane, tenant: waiting.request.tenant)
                        s.waiting.removeValue(forKey: id)
                        s.urgent.remove(id)
                        return .failure(.cancelled)
                    }
                    s.waiting[id]!.continuation = continuation
                    return nil
                }
                if let ready { continuation.resume(returning: ready) }
            }
        } onCancel: {
            let continuation = state.withLock { s -> CheckedContinuation<Result<Lease, AcquireError>, Never>? in
                // Already dispatched: the lease is on its way to the task, which releases it.
                guard let waiting = s.waiting[id], waiting.result == nil else { return nil }
                _ = s.scheduler.remove(id: id, lane: waiting.request.lane, tenant: waiting.request.tenant)
                s.waiting.removeValue(forKey: id)
                s.urgent.remove(id)
                return waiting.continuation
            }
            continuation?.resume(returning: .failure(.cancelled))
        }
    }

    private func resume(_ resumptions: [Resumption]) {
        for (continuation, result) in resumptions { continuation.resume(returning: result) }
    }

    /// Hands free slots to queued requests in scheduler order until none fits.
    private func dispatchLocked(_ s: inout State, now: Duration) -> [Resumption] {
        var out: [Resumption] = []
        guard s.scheduler.queuedTotal > 0 else { return out }
        // The scheduler is moved out so the fit check may read the replicas without a copy.
        var scheduler = s.scheduler
        s.scheduler = Self.placeholder
        defer { s.scheduler = scheduler }
        while scheduler.queuedTotal > 0 {
            var choice: (index: Int, affinity: Bool)?
            let picked = scheduler.dispatch(now: now) { request in
                guard let w = s.waiting[request.id] else { return true }
                let candidates = dispatchable(s, excluding: w.ticket.excluding, tokens: request.inputTokens + request.maxOutputTokens, now: now)
                if case .replica(let id, let affinity) = Balancer.choose(candidates, affinityKey: w.ticket.affinityKey,
                                                                         balanceFactor: config.routing.balanceFactor, using: &s.rng) {
                    choice = (id, affinity)
                    return true
                }
                return false
            }
            guard let request = picked else { break }
            guard let (index, affinity) = choice, let waiting = s.waiting[request.id] else { continue }
            let lease = lease(&s, request, ticket: waiting.ticket, priority: waiting.priority, index: index, affinity: affinity, charged: true, now: now)
            if let continuation = waiting.continuation {
                s.waiting.removeValue(forKey: request.id)
                s.urgent.remove(request.id)
                out.append((continuation, .success(lease)))
            } else {
                s.waiting[request.id]!.result = .success(lease)
            }
        }
        return out
    }

    /// Takes a slot on replica `index` for a dispatched request.
    private func lease(_ s: inout State, _ request: LaneScheduler.Request, ticket: Ticket, priority: Int, index: Int, affinity: Bool,
                       charged: Bool, now: Duration) -> Lease {
        var probe = false
        if s.replicas[index].outlier.admission(now: now) == .probe {
            s.replicas[index].outlier.startProbe(now: now)
            probe = true
        }
        let lane = lanes[request.lane]
        let preemptible = (lane?.preemptible ?? false) && ticket.preemptions < (lane?.maxPreemptions ?? 0)
        let signal = preemptible ? PreemptionSignal() : nil
        s.replicas[index].inflight += 1
        s.replicas[index].inflightTokens += request.inputTokens + request.maxOutputTokens
        s.replicas[index].leases[request.id] = ActiveLease(lane: request.lane, priority: priority, started: now, signal: signal)
        return Lease(index: index, backend: s.replicas[index].backend, isProbe: probe, viaAffinity: affinity, id: request.id,
                     request: request, preemption: signal, started: now, charged: charged)
    }

    private func eligibleReplicas(_ s: State, excluding: Set<Int>, now: Duration) -> [Int] {
        var result: [Int] = []
        for (i, r) in s.replicas.enumerated() where !excluding.contains(i) && isEligible(r, now: now) { result.append(i) }
        return result
    }

    private func isEligible(_ r: ReplicaState, now: Duration) -> Bool {
        guard r.active.isHealthy, r.gateOpen, !r.removed else { return false }
        if let expiry = r.expiresAt, expiry <= now { return false }
        if r.outlier.admission(now: now) == .refuse { return false }
        if let until = r.coolingUntil, until > now { return false }
        return true
    }

    /// Eligible replicas that can take `tokens` more within their token budget and KV-cache
    /// headroom; the balancer then checks their slot windows. A replica with nothing in flight
    /// always takes one request, so a large prompt or stale metrics cannot wedge the pool.
    private func dispatchable(_ s: State, excluding: Set<Int>, tokens: Int, now: Duration) -> [Balancer.Replica] {
        var result: [Balancer.Replica] = []
        result.reserveCapacity(s.replicas.count)
        for (i, r) in s.replicas.enumerated() where !excluding.contains(i) && isEligible(r, now: now) {
            if r.inflight > 0 {
                if let budget = config.batching.maxBatchTokens, r.inflightTokens + tokens > budget { continue }
                if let headroom = config.memoryHeadroom, !r.metricsUnsupported, let signals = r.signals,
                   !signals.hasMemoryHeadroom(now: now, kvCacheMax: headroom.kvCacheMax, staleAfter: headroom.metricsStaleAfter) { continue }
            }
            result.append(Balancer.Replica(id: i, weight: r.backend.weight, inflight: r.inflight, maxInflight: limit(r)))
        }
        return result
    }

    /// Mean engine saturation over eligible replicas (Gateway API Inference Extension); nil
    /// without metrics.
    private func saturation(_ s: State, now: Duration) -> Double? {
        guard let headroom = config.memoryHeadroom else { return nil }
        var levels: [Double] = []
        for r in s.replicas where isEligible(r, now: now) && !r.metricsUnsupported {
            guard let signals = r.signals else { continue }
            levels.append(signals.saturation(now: now, staleAfter: headroom.metricsStaleAfter))
        }
        guard !levels.isEmpty else { return nil }
        return levels.reduce(0, +) / Double(levels.count)
    }

    /// Estimated wait for a request of band `priority`, from measured rates; nil before any.
    private func capacity(_ s: State, priority: Int, now: Duration) -> LaneScheduler.Capacity? {
        guard s.prefillTokensPerSecond != nil || s.serviceSeconds != nil else { return nil }
        var slots = 0
        var free = false
        for r in s.replicas where isEligible(r, now: now) {
            let cap = limit(r)
            if cap == 0 || r.inflight < cap { free = true }
            slots += cap
        }
        var toSlot = Duration.zero
        if !free, slots > 0, let service = s.serviceSeconds {
            let ahead = s.scheduler.queued(atOrAbove: priority)
            toSlot = .seconds(service * Double(ahead + 1) / Double(slots))
        }
        return LaneScheduler.Capacity(prefillTokensPerSecond: s.prefillTokensPerSecond ?? .infinity, timeToFreeSlot: toSlot)
    }

    /// What a finished attempt told about the backend's usage.
    public struct Usage: Sendable {
        public var promptTokens: Int?
        public var completionTokens: Int?
        public init(promptTokens: Int? = nil, completionTokens: Int? = nil) {
            self.promptTokens = promptTokens
            self.completionTokens = completionTokens
        }
    }

    /// Returns the slot and records what the attempt says about the backend's health; `usage`
    /// reconciles the tenant's fairness counter. Returns true when this failure ejected the backend.
    @discardableResult
    public func release(_ lease: Lease, outcome: AttemptOutcome, usage: Usage? = nil, preempted: Bool = false) -> Bool {
        let now = self.now
        let (resumptions, ejected) = state.withLock { s -> ([Resumption], Bool) in
            s.replicas[lease.index].inflight -= 1
            s.replicas[lease.index].inflightTokens -= lease.request.inputTokens + lease.request.maxOutputTokens
            s.replicas[lease.index].leases.removeValue(forKey: lease.id)
            var ejected = false
            switch outcome {
            case .success:
                s.replicas[lease.index].outlier.recordSuccess()
                let seconds = (now - lease.started).seconds
                s.serviceSeconds = s.serviceSeconds.map { 0.8 * $0 + 0.2 * seconds } ?? seconds
                s.serviceByLane[lease.request.lane] = s.serviceByLane[lease.request.lane].map { 0.8 * $0 + 0.2 * seconds } ?? seconds
            case .failure: ejected = s.replicas[lease.index].outlier.recordFailure(now: now)
            case .neutral: if lease.isProbe { s.replicas[lease.index].outlier.cancelProbe() }
            }
            if lease.charged, !preempted {
                s.scheduler.complete(lease.request, outputTokens: usage?.completionTokens ?? lease.request.maxOutputTokens,
                                     inputTokens: usage?.promptTokens)
            }
            return (dispatchLocked(&s, now: now), ejected)
        }
        resume(resumptions)
        return ejected
    }

    /// Feeds adaptive concurrency and the prefill-rate estimate: server-side time to first token
    /// (from the request being sent), time per output token, a 429/503 from the backend.
    public func observe(_ lease: Lease, ttft: Duration? = nil, tpot: Duration? = nil, promptTokens: Int? = nil, overloaded: Bool = false) {
        state.withLock { s in
            if let ttft {
                s.replicas[lease.index].samples.ttft.append(ttft.seconds)
                if let n = promptTokens, n > 0, ttft > .zero {
                    let rate = Double(n) / ttft.seconds
                    s.prefillTokensPerSecond = s.prefillTokensPerSecond.map { 0.8 * $0 + 0.2 * rate } ?? rate
                }
            }
            if let tpot { s.replicas[lease.index].samples.tpot.append(tpot.seconds) }
            if overloaded { s.replicas[lease.index].samples.overloads += 1 }
        }
    }

    // MARK: - Periodic work

    /// Queue depth per lane and each replica's window, for metrics.
    public struct TickReport: Sendable {
        public var queueDepth: [(lane: String, depth: Int)] = []
        public var windows: [(backend: String, window: Int)] = []
        /// Requests preempted this tick, by lane.
        public var preempted: [String] = []
        public var timedOut: [String] = []
    }

    /// Timeout actions, total timeouts of queued requests, preemption and the AIMD windows;
    /// called every tick by the gateway's scheduler loop.
    @discardableResult
    public func tick() -> TickReport {
        let now = self.now
        var report = TickReport()
        let resumptions = state.withLock { s -> [Resumption] in
            var out: [Resumption] = []
            func fail(_ id: UInt64, _ error: AcquireError) {
                guard let w = s.waiting.removeValue(forKey: id) else { return }
                s.urgent.remove(id)
                report.timedOut.append(w.request.lane)
                if let c = w.continuation { out.append((c, .failure(error))) }
            }
            for request in s.scheduler.expire(now: now) { fail(request.id, .queueTimeout) }
            if now - s.lastGiveUpCheck >= .milliseconds(100) {
                s.lastGiveUpCheck = now
                for (id, w) in s.waiting where w.result == nil && now >= w.giveUpAt {
                    _ = s.scheduler.remove(id: id, lane: w.request.lane, tenant: w.request.tenant)
                    fail(id, .queueTimeout)
                }
            }
            report.preempted = preemptLocked(&s, now: now)
            if config.adaptiveConcurrency.enabled, now - s.lastAdaptive >= config.adaptiveConcurrency.interval {
                s.lastAdaptive = now
                adaptLocked(&s)
            }
            out += dispatchLocked(&s, now: now)
            report.queueDepth = lanes.keys.sorted().map { ($0, s.scheduler.queued(lane: $0)) }
            report.windows = s.replicas.filter { !$0.removed }.map { ($0.backend.id, limit($0)) }
            return out
        }
        resume(resumptions)
        return report
    }

    /// A queued request of an urgent lane that would miss its start deadline while every slot it
    /// could use is held: the youngest preemptible request of a lower band is stopped (its proxy
    /// requeues it first in its queue). Not before it is needed: while some in-flight request is
    /// expected to finish (its lane's usual service time) early enough, counting the time the
    /// engine takes to stop a cancelled generation (`preemption_lead`), the request waits.
    private func preemptLocked(_ s: inout State, now: Duration) -> [String] {
        guard !s.urgent.isEmpty else { return [] }
        let lead = config.preemptionLead + tickInterval * 2
        var preempted: [String] = []
        for id in s.urgent {
            guard let w = s.waiting[id], w.result == nil, !w.preemptionAsked, let startBy = w.request.deadline else { continue }
            var soonestFree: Duration?
            var victim: (replica: Int, lease: UInt64, started: Duration)?
            for (i, r) in s.replicas.enumerated() where !w.ticket.excluding.contains(i) && isEligible(r, now: now) {
                for (leaseID, lease) in r.leases {
                    let expected = s.serviceByLane[lease.lane] ?? s.serviceSeconds
                    let remaining = expected.map { Swift.max(.zero, .seconds($0) - (now - lease.started)) }
                    if let remaining { soonestFree = soonestFree.map { Swift.min($0, remaining) } ?? remaining }
                    if lease.priority > w.priority, lease.signal?.isArmed == true, victim == nil || lease.started > victim!.started {
                        victim = (i, leaseID, lease.started)
                    }
                }
            }
            guard now + (soonestFree ?? .zero) + lead >= startBy || (soonestFree == nil && now + lead >= startBy) else { continue }
            guard let victim, let signal = s.replicas[victim.replica].leases[victim.lease]?.signal, signal.fire() else { continue }
            s.waiting[id]!.preemptionAsked = true
            preempted.append(w.request.lane)
        }
        return preempted
    }

    private func adaptLocked(_ s: inout State) {
        for i in s.replicas.indices where s.replicas[i].window != nil {
            let samples = s.replicas[i].samples
            s.replicas[i].samples = Samples()
            var deferrals = 0
            var preemptions = 0
            if let signals = s.replicas[i].signals {
                deferrals = Int(signals.waiting ?? 0)
                if let total = signals.deferredTotal { deferrals += Int(max(0, total - (s.replicas[i].lastDeferred ?? total))) }
                if let total = signals.preemptionsTotal { preemptions = Int(max(0, total - (s.replicas[i].lastPreemptions ?? total))) }
                s.replicas[i].lastDeferred = signals.deferredTotal
                s.replicas[i].lastPreemptions = signals.preemptionsTotal
            }
            let observation = AdaptiveConcurrency.Observation(
                tpotP95: Self.p95(samples.tpot).map { Duration.seconds($0) }, ttftP95: Self.p95(samples.ttft).map { Duration.seconds($0) },
                overloadAnswers: samples.overloads, deferrals: deferrals, preemptions: preemptions)
            // No traffic, no evidence: hold.
            if samples.ttft.isEmpty, samples.tpot.isEmpty, observation == AdaptiveConcurrency.Observation() { continue }
            s.replicas[i].window!.update(observation)
        }
    }

    static func p95(_ values: [Double]) -> Double? {
        guard !values.isEmpty else { return nil }
        let sorted = values.sorted()
        return sorted[min(sorted.count - 1, Int((Double(sorted.count) * 0.95).rounded(.up)) - 1)]
    }

    /// Latest `/metrics` of a replica (nil `signals` with `unsupported`: it has none).
    public func recordSignals(_ index: Int, _ signals: BackendSignals?, unsupported: Bool = false) {
        let resumptions = state.withLock { s -> [Resumption] in
            guard s.replicas.indices.contains(index) else { return [] }
            if let signals { s.replicas[index].signals = signals }
            s.replicas[index].metricsUnsupported = unsupported
            return dispatchLocked(&s, now: now)
        }
        resume(resumptions)
    }

    /// A request on this replica was cancelled (preempted, or its client left). llama.cpp notices
    /// a closed connection of a non-streaming request only after a second with no other result
    /// on its queue, and every `/metrics` scrape is such a result: scraping pauses meanwhile, or
    /// the cancelled generation runs on and holds the slot that was just freed.
    public func noteCancelled(_ index: Int, quiet: Duration = .milliseconds(1500)) {
        let now = self.now
        state.withLock { $0.replicas[index].quietUntil = now + quiet }
    }

    /// True while scraping this replica should pause (a cancellation is being noticed).
    public func isQuiet(_ index: Int) -> Bool {
        let now = self.now
        return state.withLock { s in s.replicas[index].quietUntil.map { $0 > now } ?? false }
    }

    /// Pool time (seconds since the pool was made), the clock of ``BackendSignals/scrapedAt``.
    public var clock: Duration { now }

    // MARK: - Replica lifecycle

    /// Opens or closes a replica to new requests (managed replica lifecycle, drain). Requests
    /// already in flight are not affected.
    public func setGate(_ index: Int, open: Bool) {
        let resumptions = state.withLock { s -> [Resumption] in
            s.replicas[index].gateOpen = open
            return open ? dispatchLocked(&s, now: now) : []
        }
        resume(resumptions)
    }

    /// A backend answered 429/503 with `Retry-After`: keep traffic away until then.
    public func coolDown(_ index: Int, for duration: Duration) {
        let now = self.now
        state.withLock { $0.replicas[index].coolingUntil = now + duration }
    }

    /// Records an active health check; returns true when the backend's health flipped.
    @discardableResult
    public func recordHealthCheck(_ index: Int, passed: Bool, error: String? = nil) -> Bool {
        let (flipped, resumptions) = state.withLock { s -> (Bool, [Resumption]) in
            let flipped = s.replicas[index].active.record(passed: passed, error: error)
            return (flipped, flipped && passed ? dispatchLocked(&s, now: now) : [])
        }
        resume(resumptions)
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
        /// Current slot limit (adaptive window when enabled; 0 = unlimited).
        public let window: Int
        /// The engine's own view from its `/metrics`, when scraped.
        public let engine: BackendSignals?
    }

    /// Live replicas (registered ones whose heartbeat lapsed are left out), with their index.
    public func snapshot() -> [ReplicaSnapshot] {
        let now = self.now
        return state.withLock { s in
            s.replicas.enumerated().compactMap { i, r in
                if r.removed { return nil }
                if let expiry = r.expiresAt, expiry <= now { return nil }
                return ReplicaSnapshot(index: i, backend: r.backend, inflight: r.inflight, healthy: r.active.isHealthy,
                                       ejected: r.outlier.admission(now: now) == .refuse, gateOpen: r.gateOpen, lastError: r.active.lastError,
                                       window: limit(r), engine: r.signals)
            }
        }
    }

    /// At least one live replica passes its health checks and takes traffic.
    public var isReady: Bool {
        snapshot().contains { $0.healthy && $0.gateOpen }
    }

    /// Requests waiting in a lane.
    public func queued(lane: String) -> Int { state.withLock { $0.scheduler.queued(lane: lane) } }

    /// Adds a backend started elsewhere (a Slurm job, another orchestrator), or renews its lease
    /// when its URL is already registered (a heartbeat). Returns its index and whether it is new.
    /// Registration counts as a passing health check: the server just announced itself.
    public func register(_ config: BackendConfig, ttl: Duration) -> (index: Int, isNew: Bool) {
        let now = self.now
        let backend = Backend(config: config, publicModel: self.config.name)
        let (index, isNew, resumptions) = state.withLock { s -> (Int, Bool, [Resumption]) in
            if let i = s.replicas.firstIndex(where: { !$0.removed && $0.backend.id == backend.id && $0.expiresAt != nil }) {
                s.replicas[i].expiresAt = now + ttl
                return (i, false, [])
            }
            var r = replicaTemplate
            r.backend = backend
            r.expiresAt = now + ttl
            r.active.record(passed: true)
            r.window = Self.makeWindow(config: self.config, lanes: Array(lanes.values), replica: r)
            s.replicas.append(r)
            return (s.replicas.count - 1, true, dispatchLocked(&s, now: now))
        }
        resume(resumptions)
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

    func metricsUnsupported(_ index: Int) -> Bool { state.withLock { $0.replicas[index].metricsUnsupported } }

    public func inflight(_ index: Int) -> Int { state.withLock { $0.replicas[index].inflight } }
}
