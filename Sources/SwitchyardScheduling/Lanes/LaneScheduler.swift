import DequeModule
import HeapModule

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
///
/// Requests are identified by `id`; the caller keeps whatever it needs per id (a continuation,
/// the request body). Non-generic on purpose: the hot path avoids runtime generic metadata.
package struct LaneScheduler: Sendable {
    package enum TimeoutAction: String, Sendable { case reject, delay }

    package struct Lane: Sendable, Equatable {
        package var name: String
        package var band: Int
        package var minShare: Double
        package var maxQueueSize: Int
        package var timeoutAction: TimeoutAction

        package init(name: String, band: Int, minShare: Double = 0, maxQueueSize: Int = .max, timeoutAction: TimeoutAction = .reject) {
            self.name = name
            self.band = band
            self.minShare = minShare
            self.maxQueueSize = maxQueueSize
            self.timeoutAction = timeoutAction
        }
    }

    package struct Request: Sendable {
        package var id: UInt64
        package var lane: String
        package var tenant: String
        package var inputTokens: Int
        package var maxOutputTokens: Int
        /// Latest time the request may start (its TTFT deadline minus expected prefill); nil = none.
        package var deadline: Duration?
        package internal(set) var delayed = false

        package init(id: UInt64, lane: String, tenant: String, inputTokens: Int, maxOutputTokens: Int, deadline: Duration? = nil) {
            self.id = id
            self.lane = lane
            self.tenant = tenant
            self.inputTokens = inputTokens
            self.maxOutputTokens = maxOutputTokens
            self.deadline = deadline
        }
    }

    package enum Rejection: Sendable, Equatable {
        case unknownLane
        case queueFull(limit: Int)
        /// Estimated start is later than the deadline; `retryAfter` is the estimated wait.
        case deadlineUnreachable(estimatedWait: Duration)
        case timedOut
    }

    package enum Admission: Sendable, Equatable {
        case queued
        case rejected(Rejection)
    }

    /// What the pool can do now, for deadline-aware admission.
    package struct Capacity: Sendable, Equatable {
        package var prefillTokensPerSecond: Double
        /// Until a slot frees on the soonest replica (zero when one is free).
        package var timeToFreeSlot: Duration

        package init(prefillTokensPerSecond: Double, timeToFreeSlot: Duration = .zero) {
            self.prefillTokensPerSecond = prefillTokensPerSecond
            self.timeToFreeSlot = timeToFreeSlot
        }
    }

    package struct Prices: Sendable, Equatable {
        package var input: Double = 1
        package var output: Double = 2
        package init(input: Double = 1, output: Double = 2) {
            self.input = input
            self.output = output
        }
    }

    struct TenantQueue: Sendable {
        var counter: Double = 0
        var queue: Deque<Request> = Deque()
        /// Bumped whenever the counter changes; heap entries of older versions are stale.
        var version = 0
    }

    /// Backlogged tenants by counter (lazy deletion: stale entries are skipped when popped).
    struct HeapEntry: Comparable, Sendable {
        var counter: Double
        var tenant: String
        var version: Int
        static func < (a: HeapEntry, b: HeapEntry) -> Bool {
            a.counter != b.counter ? a.counter < b.counter : a.tenant < b.tenant
        }
    }

    struct Band: Sendable {
        var tenants: [String: TenantQueue] = [:]
        var heap = Heap<HeapEntry>()
        var delayed: Deque<Request> = Deque()
        var count = 0
        var queuedTokens = 0
        var credit = 0.0
        var minShare = 0.0
    }

    package let lanes: [String: Lane]
    package let prices: Prices
    var weights: [String: Double]
    /// Bands in priority order; `bandIndex` maps a lane's band number to its position.
    var bands: [Band] = []
    var bandIndex: [Int: Int] = [:]
    var laneCounts: [String: Int] = [:]
    let bandOrder: [Int]
    /// No queued request has a deadline before this (it may be earlier than the real minimum
    /// after removals): ``expire(now:)`` has nothing to do while `now` is not past it.
    package private(set) var earliestDeadline: Duration?

    package init(lanes: [Lane], tenantWeights: [String: Double] = [:], prices: Prices = Prices()) {
        self.lanes = Dictionary(uniqueKeysWithValues: lanes.map { ($0.name, $0) })
        self.prices = prices
        weights = tenantWeights
        bandOrder = Set(lanes.map(\.band)).sorted()
        bands = bandOrder.map { _ in Band() }
        for (i, b) in bandOrder.enumerated() { bandIndex[b] = i }
        for lane in lanes {
            let i = bandIndex[lane.band]!
            bands[i].minShare = max(bands[i].minShare, lane.minShare)
        }
    }

    static func weight(_ tenant: String, in weights: [String: Double]) -> Double { max(weights[tenant] ?? 1, 1e-9) }

    /// Requests waiting in `lane`'s band.
    package func queued(band: Int) -> Int { bandIndex[band].map { bands[$0].count } ?? 0 }
    package var queuedTotal: Int { bands.reduce(0) { $0 + $1.count } }
    /// Requests waiting in a lane.
    package func queued(lane: String) -> Int { laneCounts[lane] ?? 0 }
    /// Requests waiting in bands of priority `band` or higher (served before or with it).
    package func queued(atOrAbove band: Int) -> Int {
        zip(bandOrder, bands).reduce(0) { $0 + ($1.0 <= band ? $1.1.count : 0) }
    }

    /// VTC counter of a tenant in a band (for tests and metrics).
    package func counter(band: Int, tenant: String) -> Double? { bandIndex[band].flatMap { bands[$0].tenants[tenant]?.counter } }

    /// Admission at arrival.
    package mutating func enqueue(_ request: Request, now: Duration, capacity: Capacity? = nil) -> Admission {
        guard let lane = lanes[request.lane], let b = bandIndex[lane.band] else { return .rejected(.unknownLane) }
        if laneCounts[lane.name, default: 0] >= lane.maxQueueSize { return .rejected(.queueFull(limit: lane.maxQueueSize)) }
        if let deadline = request.deadline, let capacity, capacity.prefillTokensPerSecond > 0 {
            let ahead = bands[...b].reduce(0) { $0 + $1.queuedTokens }
            let wait = Duration.seconds(Double(ahead) / capacity.prefillTokensPerSecond) + capacity.timeToFreeSlot
            if now + wait > deadline { return .rejected(.deadlineUnreachable(estimatedWait: wait)) }
        }
        Self.append(request, to: &bands[b])
        laneCounts[lane.name, default: 0] += 1
        noteDeadline(request.deadline)
        return .queued
    }

    private static func append(_ request: Request, to band: inout Band) {
        if let slot = band.tenants.index(forKey: request.tenant), !band.tenants.values[slot].queue.isEmpty {
            band.tenants.values[slot].queue.append(request)
        } else {
            // Counter lift: re-activation starts at the smallest backlogged counter, no banked credit.
            var tenant = band.tenants.removeValue(forKey: request.tenant) ?? TenantQueue()
            if let floor = minimumBacklogged(&band) { tenant.counter = max(tenant.counter, floor) }
            tenant.version += 1
            tenant.queue.append(request)
            band.heap.insert(HeapEntry(counter: tenant.counter, tenant: request.tenant, version: tenant.version))
            band.tenants[request.tenant] = tenant
        }
        band.count += 1
        band.queuedTokens += request.inputTokens
    }

    /// The smallest counter among backlogged tenants (drops stale heap entries on the way).
    private static func minimumBacklogged(_ band: inout Band) -> Double? {
        while let top = band.heap.min {
            if let t = band.tenants[top.tenant], t.version == top.version, !t.queue.isEmpty { return top.counter }
            _ = band.heap.popMin()
        }
        return nil
    }

    /// The next request to dispatch, if any fits (`fits` checks a free slot, token budget and
    /// memory headroom for it). A head request that does not fit blocks its band this round.
    package mutating func dispatch(now: Duration, fits: (Request) -> Bool = { _ in true }) -> Request? {
        guard let top = bands.firstIndex(where: { $0.count > 0 }) else { return nil }
        // Anti-starvation: a lower band whose credit reached 1 goes first.
        var chosen = top
        if let starved = bands.indices.dropFirst(top + 1).first(where: { bands[$0].count > 0 && bands[$0].credit >= 1 }) {
            chosen = starved
        }
        var taken = Self.take(from: &bands[chosen], prices: prices, weights: weights, fits: fits)
        if taken == nil, chosen != top {
            // The starved band's head does not fit (its lane's share cap, a token budget): the
            // top band is not held back by it.
            chosen = top
            taken = Self.take(from: &bands[chosen], prices: prices, weights: weights, fits: fits)
        }
        guard let request = taken else { return nil }
        laneCounts[request.lane, default: 1] -= 1
        if chosen == top {
            for b in bands.indices.dropFirst(top + 1) where bands[b].count > 0 {
                let s = bands[b].minShare
                if s > 0, s < 1 { bands[b].credit += s / (1 - s) }
            }
        } else {
            bands[chosen].credit -= 1
        }
        return request
    }

    private static func take(from band: inout Band, prices: Prices, weights: [String: Double], fits: (Request) -> Bool) -> Request? {
        let request: Request
        if minimumBacklogged(&band) != nil, let entry = band.heap.min, let slot = band.tenants.index(forKey: entry.tenant) {
            // VTC: the backlogged tenant with the smallest counter (ties by name). One hash
            // lookup; the tenant is then mutated in place through the values view.
            guard let head = band.tenants.values[slot].queue.first, fits(head) else { return nil }
            _ = band.heap.popMin()
            let weight = Self.weight(entry.tenant, in: weights)
            request = band.tenants.values[slot].queue.removeFirst()
            band.tenants.values[slot].counter +=
                (prices.input * Double(request.inputTokens) + prices.output * Double(request.maxOutputTokens)) / weight
            band.tenants.values[slot].version += 1
            if !band.tenants.values[slot].queue.isEmpty {
                let t = band.tenants.values[slot]
                band.heap.insert(HeapEntry(counter: t.counter, tenant: entry.tenant, version: t.version))
            }
        } else {
            guard let head = band.delayed.first, fits(head) else { return nil }
            request = band.delayed.removeFirst()
        }
        band.count -= 1
        band.queuedTokens -= request.inputTokens
        if band.count == 0 { band.credit = 0 }
        return request
    }

    /// Reconciles the up-front charge with the real `usage` (output, and input when known).
    package mutating func complete(_ request: Request, outputTokens: Int, inputTokens: Int? = nil) {
        let input = Double((inputTokens ?? request.inputTokens) - request.inputTokens)
        adjust(
            request,
            by: (prices.input * input + prices.output * Double(outputTokens - request.maxOutputTokens)) / Self.weight(request.tenant, in: weights))
    }

    /// Removes a request still queued (its client went away); false when it is not queued.
    package mutating func remove(id: UInt64, lane laneName: String, tenant: String) -> Bool {
        guard let lane = lanes[laneName], let b = bandIndex[lane.band] else { return false }
        var removed: Request?
        if let slot = bands[b].tenants.index(forKey: tenant),
            let i = bands[b].tenants.values[slot].queue.firstIndex(where: { $0.id == id })
        {
            removed = bands[b].tenants.values[slot].queue.remove(at: i)
        } else if let i = bands[b].delayed.firstIndex(where: { $0.id == id }) {
            removed = bands[b].delayed.remove(at: i)
        }
        guard let request = removed else { return false }
        bands[b].count -= 1
        bands[b].queuedTokens -= request.inputTokens
        laneCounts[request.lane, default: 1] -= 1
        if bands[b].count == 0 { bands[b].credit = 0 }
        return true
    }

    /// A dispatched request was preempted: its charge is refunded and it goes back first in its
    /// tenant's queue, past the lane's size limit (it was admitted once; it is never lost).
    package mutating func requeueAtFront(_ request: Request) {
        guard let lane = lanes[request.lane], let b = bandIndex[lane.band] else { return }
        adjust(
            request,
            by: -(prices.input * Double(request.inputTokens) + prices.output * Double(request.maxOutputTokens))
                / Self.weight(request.tenant, in: weights))
        if let slot = bands[b].tenants.index(forKey: request.tenant), !bands[b].tenants.values[slot].queue.isEmpty {
            bands[b].tenants.values[slot].queue.prepend(request)
            bands[b].count += 1
            bands[b].queuedTokens += request.inputTokens
        } else {
            Self.append(request, to: &bands[b])
        }
        laneCounts[request.lane, default: 0] += 1
        noteDeadline(request.deadline)
    }

    mutating func noteDeadline(_ deadline: Duration?) {
        guard let deadline else { return }
        earliestDeadline = earliestDeadline.map { min($0, deadline) } ?? deadline
    }

    private mutating func adjust(_ request: Request, by delta: Double) {
        guard let lane = lanes[request.lane], let b = bandIndex[lane.band], var tenant = bands[b].tenants[request.tenant] else { return }
        tenant.counter += delta
        tenant.version += 1
        if !tenant.queue.isEmpty {
            bands[b].heap.insert(HeapEntry(counter: tenant.counter, tenant: request.tenant, version: tenant.version))
        }
        bands[b].tenants[request.tenant] = tenant
    }

    /// Applies lane timeout actions to requests queued past their deadline: rejected ones are
    /// returned (answer them), delayed ones move behind the band's other requests.
    package mutating func expire(now: Duration) -> [Request] {
        guard let earliest = earliestDeadline, now > earliest else { return [] }
        earliestDeadline = nil
        var rejected: [Request] = []
        for b in bands.indices where bands[b].count > 0 {
            for name in Array(bands[b].tenants.keys) {
                var kept = Deque<Request>()
                for var r in bands[b].tenants[name]!.queue {
                    guard let deadline = r.deadline, now > deadline, let lane = lanes[r.lane] else {
                        noteDeadline(r.deadline)
                        kept.append(r)
                        continue
                    }
                    switch lane.timeoutAction {
                    case .reject:
                        rejected.append(r)
                        bands[b].count -= 1
                        bands[b].queuedTokens -= r.inputTokens
                        laneCounts[r.lane, default: 1] -= 1
                    case .delay:
                        r.delayed = true
                        r.deadline = nil
                        bands[b].delayed.append(r)
                    }
                }
                bands[b].tenants[name]!.queue = kept
            }
        }
        return rejected
    }
}
