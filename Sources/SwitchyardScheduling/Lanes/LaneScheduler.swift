/// The queueing core of one model pool, as a pure state machine (no I/O, time passed in).
///
/// - Lanes map to strict priority bands (0 first). A lower band with `minShare > 0` is served
///   against starvation: it earns `s/(1-s)` credit per dispatch from higher bands and is served
///   when its credit reaches 1, so it gets share `s` of dispatches while backlogged.
/// - Inside a band, tenants are served by Virtual Token Counter (Sheng et al., OSDI'24): the
///   backlogged tenant with the smallest counter goes first; counters grow by the weighted tokens
///   served (`inputPrice·in + outputPrice·out) / weight`); a tenant that becomes backlogged is lifted
///   to the smallest backlogged counter, so idle time banks no credit. Output is charged up front
///   from `max_tokens` and reconciled with real usage at completion.
/// - Admission: queue full → reject; deadline unreachable (work ahead ÷ prefill rate + wait for a
///   slot + own prefill) → reject. Queued past the deadline → the lane's action: reject or delay
///   (moved behind every non-delayed request of its band, never dropped).
public struct LaneScheduler<Payload: Sendable>: Sendable {
    public enum TimeoutAction: String, Sendable { case reject, delay }

    public struct Lane: Sendable, Equatable {
        public var name: String
        public var band: Int
        public var minShare: Double
        public var maxQueueSize: Int
        public var timeoutAction: TimeoutAction

        public init(name: String, band: Int, minShare: Double = 0, maxQueueSize: Int = .max, timeoutAction: TimeoutAction = .reject) {
            self.name = name
            self.band = band
            self.minShare = minShare
            self.maxQueueSize = maxQueueSize
            self.timeoutAction = timeoutAction
        }
    }

    public struct Request: Sendable {
        public var id: UInt64
        public var lane: String
        public var tenant: String
        public var inputTokens: Int
        public var maxOutputTokens: Int
        /// Latest time the request may start (its TTFT deadline minus expected prefill); nil = none.
        public var deadline: Duration?
        public var payload: Payload
        public internal(set) var delayed = false

        public init(id: UInt64, lane: String, tenant: String, inputTokens: Int, maxOutputTokens: Int, deadline: Duration? = nil, payload: Payload) {
            self.id = id
            self.lane = lane
            self.tenant = tenant
            self.inputTokens = inputTokens
            self.maxOutputTokens = maxOutputTokens
            self.deadline = deadline
            self.payload = payload
        }
    }

    public enum Rejection: Sendable, Equatable {
        case unknownLane
        case queueFull(limit: Int)
        /// Estimated start is later than the deadline; `retryAfter` is the estimated wait.
        case deadlineUnreachable(estimatedWait: Duration)
        case timedOut
    }

    public enum Admission: Sendable, Equatable {
        case queued
        case rejected(Rejection)
    }

    /// What the pool can do now, for deadline-aware admission.
    public struct Capacity: Sendable, Equatable {
        public var prefillTokensPerSecond: Double
        /// Until a slot frees on the soonest replica (zero when one is free).
        public var timeToFreeSlot: Duration

        public init(prefillTokensPerSecond: Double, timeToFreeSlot: Duration = .zero) {
            self.prefillTokensPerSecond = prefillTokensPerSecond
            self.timeToFreeSlot = timeToFreeSlot
        }
    }

    public struct Prices: Sendable, Equatable {
        public var input: Double = 1
        public var output: Double = 2
        public init(input: Double = 1, output: Double = 2) {
            self.input = input
            self.output = output
        }
    }

    struct TenantQueue: Sendable {
        var counter: Double = 0
        var queue: Deque<Request> = Deque()
    }

    struct Band: Sendable {
        var tenants: [String: TenantQueue] = [:]
        var delayed: Deque<Request> = Deque()
        var count = 0
        var queuedTokens = 0
        var credit = 0.0
        var minShare = 0.0
    }

    public let lanes: [String: Lane]
    public let prices: Prices
    var weights: [String: Double]
    var bands: [Int: Band] = [:]
    var laneCounts: [String: Int] = [:]
    let bandOrder: [Int]

    public init(lanes: [Lane], tenantWeights: [String: Double] = [:], prices: Prices = Prices()) {
        self.lanes = Dictionary(uniqueKeysWithValues: lanes.map { ($0.name, $0) })
        self.prices = prices
        weights = tenantWeights
        bandOrder = Set(lanes.map(\.band)).sorted()
        for lane in lanes {
            bands[lane.band, default: Band()].minShare = max(bands[lane.band]?.minShare ?? 0, lane.minShare)
        }
    }

    func weight(_ tenant: String) -> Double { max(weights[tenant] ?? 1, 1e-9) }

    /// Requests waiting in `lane`'s band.
    public func queued(band: Int) -> Int { bands[band]?.count ?? 0 }
    public var queuedTotal: Int { bands.values.reduce(0) { $0 + $1.count } }

    /// VTC counter of a tenant in a band (for tests and metrics).
    public func counter(band: Int, tenant: String) -> Double? { bands[band]?.tenants[tenant]?.counter }

    /// Admission at arrival.
    public mutating func enqueue(_ request: Request, now: Duration, capacity: Capacity? = nil) -> Admission {
        guard let lane = lanes[request.lane] else { return .rejected(.unknownLane) }
        var band = bands[lane.band]!
        if laneCounts[lane.name, default: 0] >= lane.maxQueueSize { return .rejected(.queueFull(limit: lane.maxQueueSize)) }
        if let deadline = request.deadline, let capacity, capacity.prefillTokensPerSecond > 0 {
            let ahead = bandOrder.filter { $0 <= lane.band }.reduce(0) { $0 + (bands[$1]?.queuedTokens ?? 0) }
            let wait = Duration.seconds(Double(ahead) / capacity.prefillTokensPerSecond) + capacity.timeToFreeSlot
            if now + wait > deadline { return .rejected(.deadlineUnreachable(estimatedWait: wait)) }
        }
        var tenant = band.tenants[request.tenant] ?? TenantQueue()
        if tenant.queue.isEmpty {
            // Counter lift: re-activation starts at the smallest backlogged counter, no banked credit.
            if let floor = band.tenants.values.filter({ !$0.queue.isEmpty }).map(\.counter).min() {
                tenant.counter = max(tenant.counter, floor)
            }
        }
        tenant.queue.append(request)
        band.tenants[request.tenant] = tenant
        band.count += 1
        band.queuedTokens += request.inputTokens
        bands[lane.band] = band
        laneCounts[lane.name, default: 0] += 1
        return .queued
    }

    /// The next request to dispatch, if any fits (`fits` checks a free slot, token budget and
    /// memory headroom for it). A head request that does not fit blocks its band this round.
    public mutating func dispatch(now: Duration, fits: (Request) -> Bool = { _ in true }) -> Request? {
        let backlogged = bandOrder.filter { (bands[$0]?.count ?? 0) > 0 }
        guard let top = backlogged.first else { return nil }
        // Anti-starvation: a lower band whose credit reached 1 goes first.
        var chosen = top
        if let starved = backlogged.dropFirst().first(where: { (bands[$0]?.credit ?? 0) >= 1 }) {
            chosen = starved
        }
        guard let request = takeFromBand(chosen, fits: fits) else { return nil }
        if chosen == top {
            for b in backlogged.dropFirst() {
                let s = bands[b]!.minShare
                if s > 0, s < 1 { bands[b]!.credit += s / (1 - s) }
            }
        } else {
            bands[chosen]!.credit -= 1
        }
        return request
    }

    private mutating func takeFromBand(_ b: Int, fits: (Request) -> Bool) -> Request? {
        var band = bands[b]!
        defer { bands[b] = band }
        // VTC: smallest counter among backlogged tenants; ties by name for determinism.
        var best: (String, Double)?
        for (name, t) in band.tenants where !t.queue.isEmpty {
            if best == nil || t.counter < best!.1 || (t.counter == best!.1 && name < best!.0) { best = (name, t.counter) }
        }
        let request: Request
        if let (name, _) = best {
            guard let head = band.tenants[name]!.queue.first, fits(head) else { return nil }
            request = band.tenants[name]!.queue.removeFirst()
            band.tenants[name]!.counter += (prices.input * Double(request.inputTokens) + prices.output * Double(request.maxOutputTokens)) / weight(name)
        } else {
            guard let head = band.delayed.first, fits(head) else { return nil }
            request = band.delayed.removeFirst()
        }
        band.count -= 1
        band.queuedTokens -= request.inputTokens
        laneCounts[request.lane, default: 1] -= 1
        if band.count == 0 { band.credit = 0 }
        return request
    }

    /// Reconciles the up-front output charge with the real `usage.completion_tokens`.
    public mutating func complete(_ request: Request, outputTokens: Int) {
        guard let lane = lanes[request.lane] else { return }
        let delta = prices.output * Double(outputTokens - request.maxOutputTokens) / weight(request.tenant)
        bands[lane.band]?.tenants[request.tenant]?.counter += delta
    }

    /// Applies lane timeout actions to requests queued past their deadline: rejected ones are
    /// returned (answer them), delayed ones move behind the band's other requests.
    public mutating func expire(now: Duration) -> [Request] {
        var rejected: [Request] = []
        for b in bandOrder {
            guard var band = bands[b], band.count > 0 else { continue }
            for name in band.tenants.keys {
                var kept = Deque<Request>()
                for var r in band.tenants[name]!.queue {
                    guard let deadline = r.deadline, now > deadline, let lane = lanes[r.lane] else {
                        kept.append(r)
                        continue
                    }
                    switch lane.timeoutAction {
                    case .reject:
                        rejected.append(r)
                        band.count -= 1
                        band.queuedTokens -= r.inputTokens
                        laneCounts[r.lane, default: 1] -= 1
                    case .delay:
                        r.delayed = true
                        r.deadline = nil
                        band.delayed.append(r)
                    }
                }
                band.tenants[name]!.queue = kept
            }
            bands[b] = band
        }
        return rejected
    }
}

import DequeModule
