import SwitchyardCore

/// Every decision of one model pool, as a pure state machine: which queued request gets which
/// replica (``LaneScheduler`` order, then ``Balancer``), admission and shedding at arrival,
/// preemption, the AIMD and learned windows, capacity, health and cooldowns. Each call takes
/// pool time `now` (time since the pool was made) and leaves what the caller must carry out in
/// ``Effects``: resume or fail a waiting request, fire a preemption signal, wake the pool's
/// timer sooner. It reads no clock, holds no lock and does no I/O; ``ModelPool`` (the gateway)
/// holds it under a lock next to the waiting requests' continuations.
package struct PoolStateMachine: Sendable {
    package internal(set) var config: ModelConfig
    /// Lane policies by name.
    package internal(set) var lanes: [String: LaneConfig]
    /// Lanes whose queued requests may preempt in-flight work of a lower, preemptible lane.
    var urgentLanes: Set<String>
    /// Timer slack: how late the timer may fire (preemption asks this much earlier).
    let slack: Duration
    /// Limit of a replica whose capacity is unknown (`upstream.default_max_inflight`).
    let defaultMaxInflight: Int
    /// Pool time zero, for the instants of a ``Ticket``.
    package let origin: ContinuousClock.Instant
    let replicaTemplate: Replica

    var replicas: [Replica] = []
    /// The replicas by requests in flight (``choose(excluding:tokens:affinityKey:now:)``).
    var loadIndex = LoadIndex()
    var scheduler: LaneScheduler
    /// Requests queued in the scheduler, by id.
    var waiting: [UInt64: Waiting] = [:]
    /// Waiting requests of urgent lanes with a deadline (checked for preemption).
    var urgent: Set<UInt64> = []
    var nextID: UInt64 = 0
    /// Breaks the balancer's ties; seeded for a reproducible simulation, random otherwise.
    var rng: SplitMix64
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
        /// Left out of a reloaded configuration (or no longer discovered): closed, and removed
        /// once idle.
        var retiring = false
        /// New (a reload, discovery) and closed until the gateway admits it: requests wait for it.
        var admitting = false
        /// Found by this discovery source (DNS, EndpointSlices); nil: configured, managed or registered.
        var discoveredBy: String?
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
        /// The preemption check found nothing to do past its time: the next one is not before this.
        var recheckAt: Duration?
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
        defaultMaxInflight: Int = UpstreamConfig().defaultMaxInflight, seed: UInt64? = nil
    ) {
        var system = SystemRandomNumberGenerator()
        rng = SplitMix64(seed: seed ?? system.next())
        self.config = config
        self.origin = origin
        self.defaultMaxInflight = defaultMaxInflight
        self.slack = slack
        self.lanes = Dictionary(lanes.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        urgentLanes = Self.urgent(lanes)
        replicaTemplate = Replica(
            backend: Backend(config: BackendConfig(url: "http://127.0.0.1:1"), publicModel: config.name),
            active: ActiveHealth(
                healthyThreshold: health.healthyThreshold, unhealthyThreshold: health.unhealthyThreshold,
                initiallyHealthy: !health.enabled),
            outlier: OutlierDetector(
                consecutiveFailures: outlier.consecutiveFailures, baseEjection: outlier.baseEjection,
                maxEjection: outlier.maxEjection)
        )
        scheduler = LaneScheduler(lanes: lanes.map(Self.schedulerLane), tenantWeights: tenantWeights)
        for backend in config.backends {
            var r = makeReplica(Backend(config: backend, publicModel: config.name), now: .zero)
            r.gateOpen = !backend.managed
            replicas.append(r)
        }
    }

    /// Lanes whose queued requests may preempt: not preemptible themselves and above the worst
    /// preemptible lane.
    static func urgent(_ lanes: [LaneConfig]) -> Set<String> {
        let worstPreemptible = lanes.filter(\.preemptible).map(\.priority).max()
        return Set(lanes.filter { lane in !lane.preemptible && worstPreemptible.map { lane.priority < $0 } ?? false }.map(\.name))
    }

    static func schedulerLane(_ lane: LaneConfig) -> LaneScheduler.Lane {
        LaneScheduler.Lane(
            name: lane.name, band: lane.priority, minShare: lane.minShare,
            maxQueueSize: lane.queue.maxSize == 0 ? .max : lane.queue.maxSize,
            timeoutAction: lane.queue.timeoutAction == .delay ? .delay : .reject)
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
    func slotLimit(_ r: Replica) -> Int { slotLimit(r.capacity) }

    func slotLimit(_ capacity: Capacity) -> Int {
        var cap = capacity.limit
        if let size = config.batching.maxBatchSize { cap = cap == 0 ? size : min(cap, size) }
        return cap
    }

    func limit(_ r: Replica) -> Int { limit(capacity: r.capacity, window: r.window) }

    func limit(capacity: Capacity, window: AdaptiveConcurrency?) -> Int {
        let cap = slotLimit(capacity)
        guard cap > 0, let window else { return cap }
        return min(cap, window.window)
    }

    /// Every replica ever added, by index (indices stay stable; removed ones are tombstoned).
    package var backends: [Backend] { replicas.map(\.backend) }

    /// Requests waiting in a lane.
    package func queued(lane: String) -> Int { scheduler.queued(lane: lane) }
}
