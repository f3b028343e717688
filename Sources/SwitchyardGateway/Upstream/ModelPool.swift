import SwitchyardCore
import SwitchyardScheduling
import Synchronization

/// The replicas behind one public model name, with their load and health, and the lane
/// scheduler in front of them: requests wait in ``LaneScheduler`` (priority bands, min_share,
/// VTC fairness between tenants, deadline admission) and are dispatched when a replica has a free
/// slot in its window, room in its token budget and KV-cache headroom.
package final class ModelPool: Sendable {
    package let config: ModelConfig
    /// Lane policies by name.
    package let lanes: [String: LaneConfig]
    /// Every replica ever added, by index (indices stay stable; removed ones are tombstoned).
    package var backends: [Backend] { state.withLock { $0.replicas.map(\.backend) } }
    let replicaTemplate: ReplicaState
    let origin: ContinuousClock.Instant
    let state: Mutex<State>
    /// Lanes whose queued requests may preempt in-flight work of a lower, preemptible lane.
    let urgentLanes: Set<String>
    /// Timer slack: how late the ticker may look (preemption asks this much earlier).
    let tickInterval: Duration
    /// Rung when work is due sooner than the ticker's next look.
    let doorbell = Doorbell()
    /// The ticker looks at no particular time (any deadline is sooner).
    static let unarmed = Duration.seconds(1 << 40)
    /// Limit of a replica whose capacity is unknown (`upstream.default_max_inflight`).
    let defaultMaxInflight: Int

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
        /// How many requests it runs at once, and where that came from.
        var capacity = Capacity(source: .pending, slots: 0)
        /// Most requests in flight since the last scheduler tick (is the window full?).
        var peakInflight = 0
        /// Times active health checks found it healthy again after failing (the first pass counts).
        var healthyFlips = 0
    }

    /// The concurrency limit in force on a replica.
    struct Capacity {
        var source: CapacitySource
        /// Requests at once (0 = unlimited); for learned and default sources, the window's start.
        var slots: Int
        var tokens: Int?
        /// Learned and default sources: the window that grows and shrinks.
        var learned: LearnedWindow?
        var limit: Int { learned?.window ?? slots }
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

        var isEmpty: Bool { ttft.isEmpty && tpot.isEmpty && overloads == 0 }
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
        /// When the pool's ticker will next look (pool time): work due sooner rings ``doorbell``.
        var armedUntil = ModelPool.unarmed
    }

    typealias Resumption = (CheckedContinuation<Result<Lease, AcquireError>, Never>, Result<Lease, AcquireError>)

    /// What the scheduler needs to know about a request.
    package struct Ticket: Sendable {
        package var lane: String
        package var tenant: String
        package var inputTokens: Int
        package var maxOutputTokens: Int
        /// Latest start that can still meet the lane's deadline; past it, the lane's timeout action.
        package var startBy: ContinuousClock.Instant?
        /// Waiting ends here whatever the lane says (the request's total timeout).
        package var giveUpAt: ContinuousClock.Instant
        package var affinityKey: UInt64?
        /// Replicas already tried by this request.
        package var excluding: Set<Int> = []
        /// Times this request was preempted so far.
        package var preemptions = 0
        /// A preempted request going back: first in its tenant's queue, no admission check.
        package var requeue = false

        package init(
            lane: String, tenant: String, inputTokens: Int, maxOutputTokens: Int, startBy: ContinuousClock.Instant?,
            giveUpAt: ContinuousClock.Instant, affinityKey: UInt64? = nil
        ) {
            self.lane = lane
            self.tenant = tenant
            self.inputTokens = inputTokens
            self.maxOutputTokens = maxOutputTokens
            self.startBy = startBy
            self.giveUpAt = giveUpAt
            self.affinityKey = affinityKey
        }
    }

    package struct Lease: Sendable {
        package let index: Int
        package let backend: Backend
        package let isProbe: Bool
        package let viaAffinity: Bool
        let id: UInt64
        let request: LaneScheduler.Request
        /// Set for preemptible lanes while the request may still be preempted.
        package let preemption: PreemptionSignal?
        let started: Duration
        /// Dispatched by the scheduler (its tenant was charged): usage reconciles the charge.
        let charged: Bool
        /// Requests in flight on the replica, this one included, when it was leased.
        package let inflight: Int
    }

    package enum AcquireError: Error, Sendable {
        /// No replica is healthy (or all were tried already).
        case noReplica
        /// Queued past the lane's deadline (timeout action reject) or the request's total timeout.
        case queueTimeout
        /// Refused at arrival: `reason` is the `switchyard_shed_total` label.
        case rejected(APIError, reason: String)
        case cancelled
    }

    static let placeholder = LaneScheduler(lanes: [])

    package init(
        config: ModelConfig, health: HealthCheckConfig, outlier: OutlierConfig, lanes: [LaneConfig] = LaneConfig.defaults,
        tenantWeights: [String: Double] = [:], tick: Duration = .milliseconds(10), origin: ContinuousClock.Instant = .now,
        defaultMaxInflight: Int = UpstreamConfig().defaultMaxInflight
    ) {
        self.config = config
        self.origin = origin
        self.defaultMaxInflight = defaultMaxInflight
        tickInterval = tick
        self.lanes = Dictionary(lanes.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        let worstPreemptible = lanes.filter(\.preemptible).map(\.priority).max()
        urgentLanes = Set(lanes.filter { lane in !lane.preemptible && worstPreemptible.map { lane.priority < $0 } ?? false }.map(\.name))
        let placeholder = Backend(config: BackendConfig(url: "http://127.0.0.1:1"), publicModel: config.name)
        let replica = ReplicaState(
            backend: placeholder,
            active: ActiveHealth(
                healthyThreshold: health.healthyThreshold, unhealthyThreshold: health.unhealthyThreshold,
                initiallyHealthy: !health.enabled),
            outlier: OutlierDetector(
                consecutiveFailures: outlier.consecutiveFailures, baseEjection: outlier.baseEjection,
                maxEjection: outlier.maxEjection)
        )
        replicaTemplate = replica
        let scheduler = LaneScheduler(
            lanes: lanes.map {
                LaneScheduler.Lane(
                    name: $0.name, band: $0.priority, minShare: $0.minShare,
                    maxQueueSize: $0.queue.maxSize == 0 ? .max : $0.queue.maxSize,
                    timeoutAction: $0.queue.timeoutAction == .delay ? .delay : .reject)
            },
            tenantWeights: tenantWeights)
        self.state = Mutex(State(replicas: [], scheduler: scheduler))
        let replicas = config.backends.map { backend in
            var r = makeReplica(Backend(config: backend, publicModel: config.name))
            r.gateOpen = !backend.managed
            return r
        }
        state.withLock { $0.replicas = replicas }
    }

    /// A new replica: a configured `max_inflight` is in force from the start; any other replica
    /// runs under the default limit, as a window that connect timeouts can shrink, until
    /// discovery says more (``applyCapacity(_:_:)``).
    func makeReplica(_ backend: Backend) -> ReplicaState {
        var r = replicaTemplate
        r.backend = backend
        if let configured = backend.maxInflight {
            r.capacity = Capacity(source: .config, slots: configured)
        } else {
            r.capacity = Capacity(
                source: .pending, slots: defaultMaxInflight,
                learned: LearnedWindow(settings: .init(initial: defaultMaxInflight, max: defaultMaxInflight), now: now))
        }
        r.window = Self.makeWindow(config: config, lanes: Array(lanes.values), slots: slotLimit(r))
        return r
    }

    /// The AIMD window of a replica, between `min` and its slot limit; nil when disabled or unlimited.
    static func makeWindow(config: ModelConfig, lanes: [LaneConfig], slots: Int) -> AdaptiveConcurrency? {
        guard config.adaptiveConcurrency.enabled, slots > 0 else { return nil }
        return AdaptiveConcurrency(
            min: config.adaptiveConcurrency.min, max: slots,
            tpotSLO: lanes.compactMap(\.slo.tpot).min(), ttftSLO: lanes.compactMap(\.slo.ttft).min())
    }

    /// Slots of a replica before adaptation: its capacity in force capped by
    /// `batching.max_batch_size` (0 = unlimited).
    func slotLimit(_ r: ReplicaState) -> Int {
        var cap = r.capacity.limit
        if let size = config.batching.maxBatchSize { cap = cap == 0 ? size : min(cap, size) }
        return cap
    }

    func limit(_ r: ReplicaState) -> Int {
        let cap = slotLimit(r)
        guard cap > 0, let window = r.window else { return cap }
        return min(cap, window.window)
    }

    var now: Duration { ContinuousClock.now - origin }

    package var name: String { config.name }

    // MARK: - Acquire and release

    /// Queues the request in its lane and returns a slot on the best replica not in
    /// `ticket.excluding` once the scheduler dispatches it.
    package func acquire(_ ticket: Ticket) async throws(AcquireError) -> Lease {
        enum Step {
            case done(Result<Lease, AcquireError>)
            case wait(UInt64)
        }
        let now = self.now
        let (step, resumptions) = state.withLock { s -> (Step, [Resumption]) in
            guard let lane = lanes[ticket.lane] else {
                return (
                    .done(.failure(.rejected(.invalidRequest("Unknown lane '\(ticket.lane)'.", param: "x-switchyard-lane"), reason: "unknown_lane"))),
                    []
                )
            }
            guard !eligibleReplicas(s, excluding: ticket.excluding, now: now).isEmpty else { return (.done(.failure(.noReplica)), []) }
            if lane.sheddable, !ticket.requeue, let level = saturation(s, now: now), level >= 1 {
                return (
                    .done(
                        .failure(
                            .rejected(
                                APIError(
                                    status: 503,
                                    message:
                                        "Model '\(config.name)' is saturated (engine queue or KV cache full on every replica); the \(lane.name) lane is shed first. Retry later.",
                                    type: "server_error", code: "saturated", retryAfterSeconds: 1), reason: "saturated"))), []
                )
            }
            let id = s.nextID
            s.nextID += 1
            let request = LaneScheduler.Request(
                id: id, lane: ticket.lane, tenant: ticket.tenant, inputTokens: ticket.inputTokens,
                maxOutputTokens: ticket.maxOutputTokens, deadline: ticket.startBy.map { $0 - origin })
            if let lease = uncontendedLease(&s, request, ticket: ticket, lane: lane, now: now) {
                return (.done(.success(lease)), [])
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
            if s.waiting[id]?.result == nil { armLocked(&s, deadline(of: s.waiting[id]!, now: now)) }
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

    /// A slot at once when nobody waits (the common, uncontended case), else nil: no ordering to
    /// decide, and fairness counters only matter between backlogged tenants, so nothing is charged.
    func uncontendedLease(_ s: inout State, _ request: LaneScheduler.Request, ticket: Ticket, lane: LaneConfig, now: Duration) -> Lease? {
        guard s.scheduler.queuedTotal == 0, !ticket.requeue else { return nil }
        let candidates = dispatchable(s, excluding: ticket.excluding, tokens: request.inputTokens + request.maxOutputTokens, now: now)
        guard
            case .replica(let index, let affinity) = Balancer.choose(
                candidates, affinityKey: ticket.affinityKey,
                balanceFactor: config.routing.balanceFactor, using: &s.rng)
        else { return nil }
        return lease(&s, request, ticket: ticket, priority: lane.priority, index: index, affinity: affinity, charged: false, now: now)
    }

    /// The event-loop fast path's acquire: a slot now if the request would get one without
    /// waiting or any admission decision (nobody queued, a replica free, not shed), else nil and
    /// nothing changed: the request then takes the full ``acquire(_:)`` path.
    package func tryAcquireNow(_ ticket: Ticket) -> Lease? {
        let now = self.now
        return state.withLock { s -> Lease? in
            guard let lane = lanes[ticket.lane], s.scheduler.queuedTotal == 0, !ticket.requeue else { return nil }
            if lane.sheddable, let level = saturation(s, now: now), level >= 1 { return nil }
            let request = LaneScheduler.Request(
                id: s.nextID, lane: ticket.lane, tenant: ticket.tenant, inputTokens: ticket.inputTokens,
                maxOutputTokens: ticket.maxOutputTokens, deadline: ticket.startBy.map { $0 - origin })
            guard let lease = uncontendedLease(&s, request, ticket: ticket, lane: lane, now: now) else { return nil }
            s.nextID += 1
            return lease
        }
    }

    static func error(for rejection: LaneScheduler.Rejection, lane: LaneConfig, model: String) -> AcquireError {
        switch rejection {
        case .unknownLane:
            return .rejected(.invalidRequest("Unknown lane '\(lane.name)'.", param: "x-switchyard-lane"), reason: "unknown_lane")
        case .queueFull(let limit):
            return .rejected(
                APIError(
                    status: 429, message: "The \(lane.name) queue of '\(model)' is full (\(limit) waiting). Retry later.",
                    type: "rate_limit_error", code: "queue_full", retryAfterSeconds: 1), reason: "queue_full")
        case .deadlineUnreachable(let wait):
            let seconds = max(1, Int(wait.seconds.rounded(.up)))
            return .rejected(
                APIError(
                    status: 503,
                    message:
                        "The \(lane.name) lane of '\(model)' cannot start this request before its deadline (estimated wait \(wait.formatted)). Retry later or use a lane with a longer deadline.",
                    type: "server_error", code: "deadline_unreachable", retryAfterSeconds: seconds), reason: "deadline")
        case .timedOut:
            return .queueTimeout
        }
    }

    func suspend(_ id: UInt64) async -> Result<Lease, AcquireError> {
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

    func resume(_ resumptions: [Resumption]) {
        for (continuation, result) in resumptions { continuation.resume(returning: result) }
    }

    /// Hands free slots to queued requests in scheduler order until none fits.
    func dispatchLocked(_ s: inout State, now: Duration) -> [Resumption] {
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
                if case .replica(let id, let affinity) = Balancer.choose(
                    candidates, affinityKey: w.ticket.affinityKey,
                    balanceFactor: config.routing.balanceFactor, using: &s.rng)
                {
                    choice = (id, affinity)
                    return true
                }
                return false
            }
            guard let request = picked else { break }
            guard let (index, affinity) = choice, let waiting = s.waiting[request.id] else { continue }
            let lease = lease(
                &s, request, ticket: waiting.ticket, priority: waiting.priority, index: index, affinity: affinity, charged: true, now: now)
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
    func lease(
        _ s: inout State, _ request: LaneScheduler.Request, ticket: Ticket, priority: Int, index: Int, affinity: Bool,
        charged: Bool, now: Duration
    ) -> Lease {
        var probe = false
        if s.replicas[index].outlier.admission(now: now) == .probe {
            s.replicas[index].outlier.startProbe(now: now)
            probe = true
        }
        let lane = lanes[request.lane]
        let preemptible = (lane?.preemptible ?? false) && ticket.preemptions < (lane?.maxPreemptions ?? 0)
        let signal = preemptible ? PreemptionSignal() : nil
        s.replicas[index].inflight += 1
        s.replicas[index].peakInflight = max(s.replicas[index].peakInflight, s.replicas[index].inflight)
        s.replicas[index].inflightTokens += request.inputTokens + request.maxOutputTokens
        s.replicas[index].leases[request.id] = ActiveLease(lane: request.lane, priority: priority, started: now, signal: signal)
        return Lease(
            index: index, backend: s.replicas[index].backend, isProbe: probe, viaAffinity: affinity, id: request.id,
            request: request, preemption: signal, started: now, charged: charged, inflight: s.replicas[index].inflight)
    }

    func eligibleReplicas(_ s: State, excluding: Set<Int>, now: Duration) -> [Int] {
        var result: [Int] = []
        for (i, r) in s.replicas.enumerated() where !excluding.contains(i) && isEligible(r, now: now) { result.append(i) }
        return result
    }

    func isEligible(_ r: ReplicaState, now: Duration) -> Bool {
        guard r.active.isHealthy, r.gateOpen, !r.removed else { return false }
        if let expiry = r.expiresAt, expiry <= now { return false }
        if r.outlier.admission(now: now) == .refuse { return false }
        if let until = r.coolingUntil, until > now { return false }
        return true
    }

    /// Eligible replicas that can take `tokens` more within their token budget and KV-cache
    /// headroom; the balancer then checks their slot windows. A replica with nothing in flight
    /// always takes one request, so a large prompt or stale metrics cannot wedge the pool.
    func dispatchable(_ s: State, excluding: Set<Int>, tokens: Int, now: Duration) -> [Balancer.Replica] {
        var result: [Balancer.Replica] = []
        result.reserveCapacity(s.replicas.count)
        for (i, r) in s.replicas.enumerated() where !excluding.contains(i) && isEligible(r, now: now) {
            if r.inflight > 0 {
                if let budget = config.batching.maxBatchTokens, r.inflightTokens + tokens > budget { continue }
                if let headroom = config.memoryHeadroom, !r.metricsUnsupported, let signals = r.signals,
                    !signals.hasMemoryHeadroom(now: now, kvCacheMax: headroom.kvCacheMax, staleAfter: headroom.metricsStaleAfter)
                {
                    continue
                }
            }
            result.append(Balancer.Replica(id: i, weight: r.backend.weight, inflight: r.inflight, maxInflight: limit(r)))
        }
        return result
    }

    /// Mean engine saturation over eligible replicas (Gateway API Inference Extension); nil
    /// without metrics.
    func saturation(_ s: State, now: Duration) -> Double? {
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
    func capacity(_ s: State, priority: Int, now: Duration) -> LaneScheduler.Capacity? {
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
    package struct Usage: Sendable {
        package var promptTokens: Int?
        package var completionTokens: Int?
        package init(promptTokens: Int? = nil, completionTokens: Int? = nil) {
            self.promptTokens = promptTokens
            self.completionTokens = completionTokens
        }
    }
}
