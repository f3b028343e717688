import SwitchyardCore

/// Arrival, admission, dispatch and the replica choice.
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
        if !hasEligibleReplica(excluding: ticket.excluding, now: now) {
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
        guard scheduler.queuedTotal == 0, !ticket.requeue, !atShareCap(lane, now: now) else { return nil }
        guard
            let (index, affinity) = choose(
                excluding: ticket.excluding, tokens: request.inputTokens + request.maxOutputTokens, affinityKey: ticket.affinityKey, now: now)
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
                // Read in place: a copy of the waiting entry retains every field of its ticket.
                guard let at = waiting.index(forKey: request.id) else { return true }
                if let lane = lanes[request.lane], atShareCap(lane, now: now) { return false }
                choice = choose(
                    excluding: waiting.values[at].ticket.excluding, tokens: request.inputTokens + request.maxOutputTokens,
                    affinityKey: waiting.values[at].ticket.affinityKey, now: now)
                return choice != nil
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
        loadIndex.set(index, inflight: replicas[index].inflight)
        replicas[index].peakInflight = max(replicas[index].peakInflight, replicas[index].inflight)
        replicas[index].inflightTokens += request.inputTokens + request.maxOutputTokens
        replicas[index].leases[request.id] = ActiveLease(lane: request.lane, priority: priority, started: now, signal: signal)
        return Lease(
            index: index, backend: replicas[index].backend, isProbe: probe, viaAffinity: affinity, id: request.id,
            request: request, preemption: signal, started: now, charged: charged, inflight: replicas[index].inflight)
    }

    /// Whether `lane` holds its `max_inflight_share` of the pool's slots already (never when a
    /// replica's capacity is unlimited: there is no share to take then).
    func atShareCap(_ lane: LaneConfig, now: Duration) -> Bool {
        guard let share = lane.maxInflightShare else { return false }
        var slots = 0
        var held = 0
        for i in replicas.indices where isEligible(at: i, now: now) {
            let cap = limit(at: i)
            if cap == 0 { return false }
            slots += cap
            for lease in replicas[i].leases.values where lease.lane == lane.name { held += 1 }
        }
        return slots > 0 && held >= max(1, Int(share * Double(slots)))
    }

    /// Whether some replica not in `excluding` takes work now (stops at the first).
    func hasEligibleReplica(excluding: Set<Int>, now: Duration) -> Bool {
        // By index: iterating the array would copy every replica (and retain its fields).
        for i in replicas.indices where (excluding.isEmpty || !excluding.contains(i)) && isEligible(at: i, now: now) { return true }
        return false
    }

    /// The earliest moment a replica that takes no work now may take some again without anyone
    /// acting: the end of its cooldown, or now for one whose first health checks are still to
    /// pass (its verdict dispatches or fails the waiting requests). Nil: none will.
    func comeback(excluding: Set<Int>, now: Duration) -> Duration? {
        var earliest: Duration?
        for (i, r) in replicas.enumerated() where !excluding.contains(i) && (r.gateOpen || r.admitting) && !r.removed {
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
        for (id, w) in waiting where !hasEligibleReplica(excluding: w.ticket.excluding, now: now) {
            if comeback(excluding: w.ticket.excluding, now: now) == nil { fail(id, .noReplica) }
        }
    }

    /// Whether `replicas[i]` takes work now: healthy, open, not removed or expired, not ejected or
    /// cooling down. By index, reading its fields in place: loops over a large pool must not copy
    /// each replica (a copy retains every field it holds).
    func isEligible(at i: Int, now: Duration) -> Bool {
        guard replicas[i].active.isHealthy, replicas[i].gateOpen, !replicas[i].removed else { return false }
        if let expiry = replicas[i].expiresAt, expiry <= now { return false }
        if replicas[i].outlier.admission(now: now) == .refuse { return false }
        if let until = replicas[i].coolingUntil, until > now { return false }
        return true
    }

    /// ``limit(_:)`` of `replicas[i]`, in place.
    func limit(at i: Int) -> Int { limit(capacity: replicas[i].capacity, window: replicas[i].window) }

    /// The replica a request goes to (nil: none can take it now): the least loaded eligible one
    /// with room that can take `tokens` more, or its prefix's home (``Balancer``). With equal
    /// weights and no affinity the load index answers without reading every replica; the
    /// balancer's scan decides otherwise. Both ask ``accepts(_:excluding:tokens:now:)``.
    mutating func choose(excluding: Set<Int>, tokens: Int, affinityKey: UInt64?, now: Duration) -> (index: Int, affinity: Bool)? {
        if affinityKey == nil {
            if !loadIndex.isCurrent(replicaCount: replicas.count) { rebuildLoadIndex() }
            if loadIndex.uniform { return leastLoaded(excluding: excluding, tokens: tokens, now: now).map { ($0, false) } }
        }
        let candidates = dispatchable(excluding: excluding, tokens: tokens, now: now)
        guard
            case .replica(let id, let affinity) = Balancer.choose(
                candidates, affinityKey: affinityKey, balanceFactor: config.routing.balanceFactor, using: &rng)
        else { return nil }
        return (id, affinity)
    }

    /// The least loaded replica that ``accepts(_:excluding:tokens:now:)`` the request, uniformly
    /// among the equally loaded ones (as the balancer's two draws among ties do when weights are
    /// equal), from the load index; removed replicas met on the way leave it. Nil: none accepts.
    /// A loop here rather than a closure handed to the index: a closure reading the pool would
    /// copy it on every call.
    mutating func leastLoaded(excluding: Set<Int>, tokens: Int, now: Duration) -> Int? {
        for k in 0..<loadIndex.bucketCount where loadIndex.size(of: k) > 0 {
            // Draws first in a large bucket: uniform among the acceptable when they are most of
            // it, and cheap. A small bucket, or one mostly refusing, is read in full.
            if loadIndex.size(of: k) > 8 {
                for _ in 0..<8 {
                    let i = loadIndex.member(Int.random(in: 0..<loadIndex.size(of: k), using: &rng), of: k)
                    if accepts(i, excluding: excluding, tokens: tokens, now: now) { return i }
                }
            }
            var n = 0
            var j = 0
            while j < loadIndex.size(of: k) {
                let i = loadIndex.member(j, of: k)
                if replicas[i].removed {
                    loadIndex.remove(i)
                    continue
                }
                if accepts(i, excluding: excluding, tokens: tokens, now: now) { n += 1 }
                j += 1
            }
            guard n > 0 else { continue }
            var rank = Int.random(in: 0..<n, using: &rng)
            for j in 0..<loadIndex.size(of: k) {
                let i = loadIndex.member(j, of: k)
                guard accepts(i, excluding: excluding, tokens: tokens, now: now) else { continue }
                if rank == 0 { return i }
                rank -= 1
            }
        }
        return nil
    }

    mutating func rebuildLoadIndex() {
        var members: [(index: Int, inflight: Int)] = []
        var uniform = true
        for i in replicas.indices where !replicas[i].removed {
            if let first = members.first, replicas[first.index].backend.weight != replicas[i].backend.weight { uniform = false }
            members.append((i, replicas[i].inflight))
        }
        loadIndex = LoadIndex(count: replicas.count, members: members, uniform: uniform)
    }

    /// Whether replica `i` may take a request of `tokens` now: eligible, not excluded, with a
    /// free slot, and (unless idle: an idle replica always takes one, so a large prompt or
    /// stale metrics cannot wedge the pool) within its token budget and KV-cache headroom.
    func accepts(_ i: Int, excluding: Set<Int>, tokens: Int, now: Duration) -> Bool {
        guard excluding.isEmpty || !excluding.contains(i), isEligible(at: i, now: now) else { return false }
        let cap = limit(at: i)
        return (cap == 0 || replicas[i].inflight < cap) && fits(at: i, tokens: tokens, now: now)
    }

    /// Within replica `i`'s token budget and KV-cache headroom, or idle.
    func fits(at i: Int, tokens: Int, now: Duration) -> Bool {
        guard replicas[i].inflight > 0 else { return true }
        if let budget = config.batching.maxBatchTokens, replicas[i].inflightTokens + tokens > budget { return false }
        if let headroom = config.memoryHeadroom, !replicas[i].metricsUnsupported, let signals = replicas[i].signals,
            !signals.hasMemoryHeadroom(now: now, kvCacheMax: headroom.kvCacheMax, staleAfter: headroom.metricsStaleAfter)
        {
            return false
        }
        return true
    }

    /// Eligible replicas that can take `tokens` more within their token budget and KV-cache
    /// headroom (``fits(at:tokens:now:)``); the balancer then checks their slot windows.
    func dispatchable(excluding: Set<Int>, tokens: Int, now: Duration) -> [Balancer.Replica] {
        var result: [Balancer.Replica] = []
        result.reserveCapacity(replicas.count)
        for i in replicas.indices
        where (excluding.isEmpty || !excluding.contains(i)) && isEligible(at: i, now: now) && fits(at: i, tokens: tokens, now: now) {
            result.append(Balancer.Replica(id: i, weight: replicas[i].backend.weight, inflight: replicas[i].inflight, maxInflight: limit(at: i)))
        }
        return result
    }

    /// Mean engine saturation over eligible replicas (Gateway API Inference Extension); nil
    /// without metrics.
    func saturation(now: Duration) -> Double? {
        guard let headroom = config.memoryHeadroom else { return nil }
        var levels: [Double] = []
        for i in replicas.indices where isEligible(at: i, now: now) && !replicas[i].metricsUnsupported {
            guard let signals = replicas[i].signals else { continue }
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
        var eligible = 0
        for i in replicas.indices where isEligible(at: i, now: now) {
            let cap = limit(at: i)
            if cap == 0 || replicas[i].inflight < cap { free = true }
            slots += cap
            eligible += 1
        }
        var toSlot = Duration.zero
        if !free, slots > 0, let service = serviceSeconds {
            let ahead = scheduler.queued(atOrAbove: priority)
            toSlot = .seconds(service * Double(ahead + 1) / Double(slots))
        }
        // The rate is measured per request; every eligible replica prefills its share of the queue.
        let poolRate = prefillTokensPerSecond.map { $0 * Double(max(eligible, 1)) } ?? .infinity
        return LaneScheduler.Capacity(prefillTokensPerSecond: poolRate, timeToFreeSlot: toSlot)
    }
}
