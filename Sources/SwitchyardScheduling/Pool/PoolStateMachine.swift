import SwitchyardCore

/// Every decision of one model pool, as a pure state machine: which queued request gets which
/// replica (``LaneScheduler`` order, then ``Balancer``), admission and shedding at arrival,
/// preemption, the AIMD and learned windows, capacity, health and cooldowns. Each call takes
/// pool time `now` (time since the pool was made) and leaves what the caller must carry out in
/// ``Effects``: resume or fail a waiting request, fire a preemption signal, wake the pool's
/// timer sooner. It reads no clock, holds no lock and does no I/O; ``ModelPool`` (the gateway)
/// holds it under a lock next to the waiting requests' continuations.
package struct PoolStateMachine: Sendable {
    package let config: ModelConfig
    /// Lane policies by name.
    package let lanes: [String: LaneConfig]
    /// Lanes whose queued requests may preempt in-flight work of a lower, preemptible lane.
    let urgentLanes: Set<String>
    /// Timer slack: how late the timer may fire (preemption asks this much earlier).
    let slack: Duration
    /// Limit of a replica whose capacity is unknown (`upstream.default_max_inflight`).
    let defaultMaxInflight: Int
    /// Pool time zero, for the instants of a ``Ticket``.
    package let origin: ContinuousClock.Instant
    let replicaTemplate: Replica

    var replicas: [Replica] = []
    var scheduler: LaneScheduler
    /// Requests queued in the scheduler, by id.
    var waiting: [UInt64: Waiting] = [:]
    /// Waiting requests of urgent lanes with a deadline (checked for preemption).
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
    /// When the pool's timer will next fire (pool time): work due sooner sets ``Effects/wake``.
    var armedUntil = PoolStateMachine.unarmed
    /// What the caller has to carry out; taken with ``takeEffects()`` after every call.
    var effects = Effects()
    /// Shut down: nothing waits and nothing new is admitted.
    var closed = false

    /// The timer fires at no particular time (any deadline is sooner).
    static let unarmed = Duration.seconds(1 << 40)

    /// What the shell carries out after a call.
    package struct Effects: Sendable {
        /// Waiting requests decided: resume them with their lease or error.
        package var decided: [(id: UInt64, result: Result<Lease, AcquireError>)] = []
        /// Preemptions asked for: fire the signal; if it was already committed, report back
        /// with ``preemptionRefused(_:)``.
        package var preempt: [(waiting: UInt64, signal: PreemptionSignal)] = []
        /// Work is due sooner than the timer will fire: wake it.
        package var wake = false
    }

    struct Replica {
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
        /// No `/metrics` scrape before this time (see ``noteCancelled(_:quiet:now:)``).
        var quietUntil: Duration?
        /// How many requests it runs at once, and where that came from.
        var capacity = Capacity(source: .pending, slots: 0)
        /// Most requests in flight since the last look at the learned window (was it full?).
        var peakInflight = 0
        /// Times active health checks found it healthy again after failing (the first pass counts).
        var healthyFlips = 0
        /// Whether merged embeddings requests get the same vectors as single ones here (nil: not
        /// checked since it started): only invariant replicas take merged requests.
        var batching: BatchCheck?
    }

    /// The result of comparing a replica's embeddings of probe inputs sent singly and as a batch.
    package enum BatchCheck: Sendable, Equatable {
        case invariant
        /// `why`: what differed (for the log and `/readyz`).
        case variant(why: String)
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
        var giveUpAt: Duration
        var preemptionAsked = false
    }

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
        package let id: UInt64
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
        /// The gateway's shutdown grace ran out (see ``PoolStateMachine/shutDown()``).
        case shuttingDown
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

    static let placeholder = LaneScheduler(lanes: [])

    package init(
        config: ModelConfig, health: HealthCheckConfig, outlier: OutlierConfig, lanes: [LaneConfig] = LaneConfig.defaults,
        tenantWeights: [String: Double] = [:], slack: Duration = .milliseconds(10), origin: ContinuousClock.Instant,
        defaultMaxInflight: Int = UpstreamConfig().defaultMaxInflight
    ) {
        self.config = config
        self.origin = origin
        self.defaultMaxInflight = defaultMaxInflight
        self.slack = slack
        self.lanes = Dictionary(lanes.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        let worstPreemptible = lanes.filter(\.preemptible).map(\.priority).max()
        urgentLanes = Set(lanes.filter { lane in !lane.preemptible && worstPreemptible.map { lane.priority < $0 } ?? false }.map(\.name))
        replicaTemplate = Replica(
            backend: Backend(config: BackendConfig(url: "http://127.0.0.1:1"), publicModel: config.name),
            active: ActiveHealth(
                healthyThreshold: health.healthyThreshold, unhealthyThreshold: health.unhealthyThreshold,
                initiallyHealthy: !health.enabled),
            outlier: OutlierDetector(
                consecutiveFailures: outlier.consecutiveFailures, baseEjection: outlier.baseEjection,
                maxEjection: outlier.maxEjection)
        )
        scheduler = LaneScheduler(
            lanes: lanes.map {
                LaneScheduler.Lane(
                    name: $0.name, band: $0.priority, minShare: $0.minShare,
                    maxQueueSize: $0.queue.maxSize == 0 ? .max : $0.queue.maxSize,
                    timeoutAction: $0.queue.timeoutAction == .delay ? .delay : .reject)
            },
            tenantWeights: tenantWeights)
        for backend in config.backends {
            var r = makeReplica(Backend(config: backend, publicModel: config.name), now: .zero)
            r.gateOpen = !backend.managed
            replicas.append(r)
        }
    }

    /// What the caller must carry out since the last call; clears them.
    package mutating func takeEffects() -> Effects {
        defer { effects = Effects() }
        return effects
    }

    /// A new replica: a configured `max_inflight` is in force from the start; any other replica
    /// runs under the default limit, as a window that connect timeouts can shrink, until
    /// discovery says more (``applyCapacity(_:_:now:)``).
    func makeReplica(_ backend: Backend, now: Duration) -> Replica {
        var r = replicaTemplate
        r.backend = backend
        if let configured = backend.maxInflight {
            r.capacity = Capacity(source: .config, slots: configured)
        } else {
            r.capacity = Capacity(
                source: .pending, slots: defaultMaxInflight,
                learned: LearnedWindow(settings: .init(initial: defaultMaxInflight, max: defaultMaxInflight), now: now))
        }
        r.window = makeWindow(slots: slotLimit(r))
        return r
    }

    /// The AIMD window of a replica, between `min` and its slot limit; nil when disabled or unlimited.
    func makeWindow(slots: Int) -> AdaptiveConcurrency? {
        guard config.adaptiveConcurrency.enabled, slots > 0 else { return nil }
        return AdaptiveConcurrency(
            min: config.adaptiveConcurrency.min, max: slots,
            tpotSLO: lanes.values.compactMap(\.slo.tpot).min(), ttftSLO: lanes.values.compactMap(\.slo.ttft).min())
    }

    /// Slots of a replica before adaptation: its capacity in force capped by
    /// `batching.max_batch_size` (0 = unlimited).
    func slotLimit(_ r: Replica) -> Int {
        var cap = r.capacity.limit
        if let size = config.batching.maxBatchSize { cap = cap == 0 ? size : min(cap, size) }
        return cap
    }

    func limit(_ r: Replica) -> Int {
        let cap = slotLimit(r)
        guard cap > 0, let window = r.window else { return cap }
        return min(cap, window.window)
    }

    /// Every replica ever added, by index (indices stay stable; removed ones are tombstoned).
    package var backends: [Backend] { replicas.map(\.backend) }

    /// Requests waiting in a lane.
    package func queued(lane: String) -> Int { scheduler.queued(lane: lane) }
}

// MARK: - Arrival and dispatch

extension PoolStateMachine {
    /// What became of a request on arrival.
    package enum Arrival: Sendable {
        /// A slot at once, or a refusal.
        case done(Result<Lease, AcquireError>)
        /// Queued: ``Effects/decided`` will carry its lease or error under this id.
        case queued(UInt64)
    }

    /// Queues the request in its lane, or leases a slot on the best replica not in
    /// `ticket.excluding` at once, or refuses it (unknown lane, no replica, shed, queue full,
    /// deadline unreachable).
    package mutating func arrive(_ ticket: Ticket, now: Duration) -> Arrival {
        guard !closed else { return .done(.failure(.shuttingDown)) }
        guard let lane = lanes[ticket.lane] else {
            return .done(.failure(.rejected(.invalidRequest("Unknown lane '\(ticket.lane)'.", param: "x-switchyard-lane"), reason: "unknown_lane")))
        }
        // No replica takes work now: wait for one that comes back (a cooldown ends, a first
        // health check passes) within the request's deadline, rather than failing at once.
        var comesBack: Duration?
        if eligibleReplicas(excluding: ticket.excluding, now: now).isEmpty {
            guard let back = comeback(excluding: ticket.excluding, now: now) else { return .done(.failure(.noReplica)) }
            let limit = min(ticket.giveUpAt - origin, ticket.startBy.map { $0 - origin } ?? ticket.giveUpAt - origin)
            guard back <= limit else {
                let seconds = max(1, Int((back - now).seconds.rounded(.up)))
                return .done(
                    .failure(
                        .rejected(
                            .unavailable(
                                "Every replica of '\(config.name)' is cooling down after answering 429/503; the first takes requests again in \(seconds) s, after this request's deadline.",
                                code: "upstream_unavailable", retryAfterSeconds: seconds), reason: "cooling")))
            }
            comesBack = back
        }
        if lane.sheddable, !ticket.requeue, let level = saturation(now: now), level >= 1 {
            return .done(
                .failure(
                    .rejected(
                        APIError(
                            status: 503,
                            message:
                                "Model '\(config.name)' is saturated (engine queue or KV cache full on every replica); the \(lane.name) lane is shed first. Retry later.",
                            type: "server_error", code: "saturated", retryAfterSeconds: 1), reason: "saturated")))
        }
        let id = nextID
        nextID += 1
        let request = LaneScheduler.Request(
            id: id, lane: ticket.lane, tenant: ticket.tenant, inputTokens: ticket.inputTokens,
            maxOutputTokens: ticket.maxOutputTokens, deadline: ticket.startBy.map { $0 - origin })
        if let lease = uncontendedLease(request, ticket: ticket, lane: lane, now: now) { return .done(.success(lease)) }
        if ticket.requeue {
            scheduler.requeueAtFront(request)
        } else {
            switch scheduler.enqueue(request, now: now, capacity: capacity(priority: lane.priority, now: now)) {
            case .queued: break
            case .rejected(let rejection): return .done(.failure(Self.error(for: rejection, lane: lane, model: config.name)))
            }
        }
        let w = Waiting(ticket: ticket, request: request, priority: lane.priority, giveUpAt: ticket.giveUpAt - origin)
        waiting[id] = w
        if urgentLanes.contains(lane.name), request.deadline != nil { urgent.insert(id) }
        if let comesBack { arm(comesBack) }
        let before = effects.decided.count
        dispatch(now: now)
        // Dispatched in the same call (another request's wait ended first): no waiting at all.
        if let mine = effects.decided[before...].firstIndex(where: { $0.id == id }) {
            return .done(effects.decided.remove(at: mine).result)
        }
        arm(deadline(of: w))
        return .queued(id)
    }

    /// A slot now if the request would get one without waiting or any admission decision
    /// (nobody queued, a replica free, not shed), else nil and nothing changed. The event-loop
    /// fast path's acquire; otherwise the request takes ``arrive(_:now:)``.
    package mutating func leaseNow(_ ticket: Ticket, now: Duration) -> Lease? {
        guard !closed, let lane = lanes[ticket.lane], scheduler.queuedTotal == 0, !ticket.requeue else { return nil }
        if lane.sheddable, let level = saturation(now: now), level >= 1 { return nil }
        let request = LaneScheduler.Request(
            id: nextID, lane: ticket.lane, tenant: ticket.tenant, inputTokens: ticket.inputTokens,
            maxOutputTokens: ticket.maxOutputTokens, deadline: ticket.startBy.map { $0 - origin })
        guard let lease = uncontendedLease(request, ticket: ticket, lane: lane, now: now) else { return nil }
        nextID += 1
        return lease
    }

    /// The shutdown grace ran out: every waiting request fails with ``AcquireError/shuttingDown``,
    /// and so does every later arrival.
    package mutating func shutDown() {
        closed = true
        for (id, w) in waiting {
            _ = scheduler.remove(id: id, lane: w.request.lane, tenant: w.request.tenant)
            effects.decided.append((id, .failure(.shuttingDown)))
        }
        waiting = [:]
        urgent = []
    }

    /// The waiting request's task was cancelled: it leaves its queue. False when it was already
    /// decided (its lease is on the way and must be released).
    package mutating func cancel(_ id: UInt64) -> Bool {
        guard let w = waiting.removeValue(forKey: id) else { return false }
        urgent.remove(id)
        _ = scheduler.remove(id: id, lane: w.request.lane, tenant: w.request.tenant)
        return true
    }

    /// A slot at once when nobody waits (the common, uncontended case), else nil: no ordering to
    /// decide, and fairness counters only matter between backlogged tenants, so nothing is charged.
    mutating func uncontendedLease(_ request: LaneScheduler.Request, ticket: Ticket, lane: LaneConfig, now: Duration) -> Lease? {
        guard scheduler.queuedTotal == 0, !ticket.requeue else { return nil }
        let candidates = dispatchable(excluding: ticket.excluding, tokens: request.inputTokens + request.maxOutputTokens, now: now)
        guard
            case .replica(let index, let affinity) = Balancer.choose(
                candidates, affinityKey: ticket.affinityKey,
                balanceFactor: config.routing.balanceFactor, using: &rng)
        else { return nil }
        return lease(request, ticket: ticket, priority: lane.priority, index: index, affinity: affinity, charged: false, now: now)
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

    /// Hands free slots to queued requests in scheduler order until none fits.
    mutating func dispatch(now: Duration) {
        guard scheduler.queuedTotal > 0 else { return }
        // The scheduler is moved out so the fit check may read the replicas without a copy.
        var scheduler = self.scheduler
        self.scheduler = Self.placeholder
        defer { self.scheduler = scheduler }
        while scheduler.queuedTotal > 0 {
            var choice: (index: Int, affinity: Bool)?
            let picked = scheduler.dispatch(now: now) { request in
                guard let w = waiting[request.id] else { return true }
                let candidates = dispatchable(excluding: w.ticket.excluding, tokens: request.inputTokens + request.maxOutputTokens, now: now)
                if case .replica(let id, let affinity) = Balancer.choose(
                    candidates, affinityKey: w.ticket.affinityKey,
                    balanceFactor: config.routing.balanceFactor, using: &rng)
                {
                    choice = (id, affinity)
                    return true
                }
                return false
            }
            guard let request = picked else { break }
            guard let (index, affinity) = choice, let w = waiting.removeValue(forKey: request.id) else { continue }
            urgent.remove(request.id)
            let lease = lease(request, ticket: w.ticket, priority: w.priority, index: index, affinity: affinity, charged: true, now: now)
            effects.decided.append((request.id, .success(lease)))
        }
    }

    /// Takes a slot on replica `index` for a dispatched request.
    mutating func lease(
        _ request: LaneScheduler.Request, ticket: Ticket, priority: Int, index: Int, affinity: Bool, charged: Bool, now: Duration
    ) -> Lease {
        var probe = false
        if replicas[index].outlier.admission(now: now) == .probe {
            replicas[index].outlier.startProbe(now: now)
            probe = true
        }
        let lane = lanes[request.lane]
        let preemptible = (lane?.preemptible ?? false) && ticket.preemptions < (lane?.maxPreemptions ?? 0)
        let signal = preemptible ? PreemptionSignal() : nil
        replicas[index].inflight += 1
        replicas[index].peakInflight = max(replicas[index].peakInflight, replicas[index].inflight)
        replicas[index].inflightTokens += request.inputTokens + request.maxOutputTokens
        replicas[index].leases[request.id] = ActiveLease(lane: request.lane, priority: priority, started: now, signal: signal)
        return Lease(
            index: index, backend: replicas[index].backend, isProbe: probe, viaAffinity: affinity, id: request.id,
            request: request, preemption: signal, started: now, charged: charged, inflight: replicas[index].inflight)
    }

    func eligibleReplicas(excluding: Set<Int>, now: Duration) -> [Int] {
        var result: [Int] = []
        for (i, r) in replicas.enumerated() where !excluding.contains(i) && isEligible(r, now: now) { result.append(i) }
        return result
    }

    /// The earliest moment a replica that takes no work now may take some again without anyone
    /// acting: the end of its cooldown, or now for one whose first health checks are still to
    /// pass (its verdict dispatches or fails the waiting requests). Nil: none will.
    func comeback(excluding: Set<Int>, now: Duration) -> Duration? {
        var earliest: Duration?
        for (i, r) in replicas.enumerated() where !excluding.contains(i) && r.gateOpen && !r.removed {
            if let expiry = r.expiresAt, expiry <= now { continue }
            if r.outlier.admission(now: now) == .refuse { continue }
            guard r.active.isHealthy || r.active.isComingUp else { continue }
            let back = max(now, r.coolingUntil ?? now)
            earliest = min(earliest ?? back, back)
        }
        return earliest
    }

    /// Fails the waiting requests no replica will take (every one they may use is down for good
    /// now, e.g. its first health checks failed).
    mutating func failHopeless(now: Duration) {
        for (id, w) in waiting where eligibleReplicas(excluding: w.ticket.excluding, now: now).isEmpty {
            if comeback(excluding: w.ticket.excluding, now: now) == nil { fail(id, .noReplica) }
        }
    }

    func isEligible(_ r: Replica, now: Duration) -> Bool {
        guard r.active.isHealthy, r.gateOpen, !r.removed else { return false }
        if let expiry = r.expiresAt, expiry <= now { return false }
        if r.outlier.admission(now: now) == .refuse { return false }
        if let until = r.coolingUntil, until > now { return false }
        return true
    }

    /// Eligible replicas that can take `tokens` more within their token budget and KV-cache
    /// headroom; the balancer then checks their slot windows. A replica with nothing in flight
    /// always takes one request, so a large prompt or stale metrics cannot wedge the pool.
    func dispatchable(excluding: Set<Int>, tokens: Int, now: Duration) -> [Balancer.Replica] {
        var result: [Balancer.Replica] = []
        result.reserveCapacity(replicas.count)
        for (i, r) in replicas.enumerated() where !excluding.contains(i) && isEligible(r, now: now) {
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
    func saturation(now: Duration) -> Double? {
        guard let headroom = config.memoryHeadroom else { return nil }
        var levels: [Double] = []
        for r in replicas where isEligible(r, now: now) && !r.metricsUnsupported {
            guard let signals = r.signals else { continue }
            levels.append(signals.saturation(now: now, staleAfter: headroom.metricsStaleAfter))
        }
        guard !levels.isEmpty else { return nil }
        return levels.reduce(0, +) / Double(levels.count)
    }

    /// Estimated wait for a request of band `priority`, from measured rates; nil before any.
    func capacity(priority: Int, now: Duration) -> LaneScheduler.Capacity? {
        guard prefillTokensPerSecond != nil || serviceSeconds != nil else { return nil }
        var slots = 0
        var free = false
        for r in replicas where isEligible(r, now: now) {
            let cap = limit(r)
            if cap == 0 || r.inflight < cap { free = true }
            slots += cap
        }
        var toSlot = Duration.zero
        if !free, slots > 0, let service = serviceSeconds {
            let ahead = scheduler.queued(atOrAbove: priority)
            toSlot = .seconds(service * Double(ahead + 1) / Double(slots))
        }
        return LaneScheduler.Capacity(prefillTokensPerSecond: prefillTokensPerSecond ?? .infinity, timeToFreeSlot: toSlot)
    }
}
