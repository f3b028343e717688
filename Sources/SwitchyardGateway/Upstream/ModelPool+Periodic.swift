import SwitchyardCore
import SwitchyardScheduling
import Synchronization

/// Timeouts, preemption, adaptive windows and engine signals: the pool's work on a clock.
extension ModelPool {
    // MARK: - Periodic work

    /// Queue depth per lane and each replica's window, for metrics.
    package struct TickReport: Sendable {
        package var queueDepth: [(lane: String, depth: Int)] = []
        package var windows: [(backend: String, window: Int)] = []
        /// Learned and default windows that grew this tick.
        package var capacityChanges: [(backend: String, change: LearnedWindow.Change)] = []
        /// When the pool next has work on the clock; nil: none until something happens (which
        /// rings ``ModelPool/doorbell``).
        package var next: ContinuousClock.Instant?
    }

    /// Timeout actions, total timeouts of queued requests, preemption and the AIMD windows;
    /// called by the pool's ticker at the deadline the last call returned (``TickReport/next``),
    /// sooner when ``doorbell`` rings, and a few times a second for metrics.
    @discardableResult
    package func tick() -> TickReport {
        let now = self.now
        var report = TickReport()
        let resumptions = state.withLock { s -> [Resumption] in
            var out: [Resumption] = []
            func fail(_ id: UInt64, _ error: AcquireError) {
                guard let w = s.waiting.removeValue(forKey: id) else { return }
                s.urgent.remove(id)
                if let c = w.continuation { out.append((c, .failure(error))) }
            }
            for request in s.scheduler.expire(now: now) { fail(request.id, .queueTimeout) }
            for (id, w) in s.waiting where w.result == nil && now >= w.giveUpAt {
                _ = s.scheduler.remove(id: id, lane: w.request.lane, tenant: w.request.tenant)
                fail(id, .queueTimeout)
            }
            preemptLocked(&s, now: now)
            if config.adaptiveConcurrency.enabled, now - s.lastAdaptive >= config.adaptiveConcurrency.interval {
                s.lastAdaptive = now
                adaptLocked(&s)
            }
            report.capacityChanges = growLearned(&s, now: now)
            out += dispatchLocked(&s, now: now)
            report.queueDepth = lanes.keys.sorted().map { ($0, s.scheduler.queued(lane: $0)) }
            report.windows = s.replicas.filter { !$0.removed }.map { ($0.backend.id, limit($0)) }
            let next = nextDeadlineLocked(s, now: now)
            s.armedUntil = next ?? ModelPool.unarmed
            report.next = next.map { origin + $0 }
            return out
        }
        resume(resumptions)
        return report
    }

    /// When the pool next has work on the clock (pool time): a queued request's lane deadline or
    /// total timeout, an urgent request's preemption check, the end of a cooldown or an ejection
    /// while requests wait, an adaptive or learned window's next look. Nil: nothing until an event.
    func nextDeadlineLocked(_ s: State, now: Duration) -> Duration? {
        var next: Duration?
        func consider(_ t: Duration?) {
            guard let t else { return }
            next = Swift.min(next ?? t, Swift.max(t, now))
        }
        // `expire` takes requests strictly past their deadline.
        consider(s.scheduler.earliestDeadline.map { $0 + .milliseconds(1) })
        for w in s.waiting.values where w.result == nil { consider(deadline(of: w, now: now)) }
        if !s.waiting.isEmpty {
            for r in s.replicas where !r.removed {
                if let until = r.coolingUntil, until > now { consider(until) }
                if case .ejected(let until) = r.outlier.state { consider(until) }
            }
        }
        if config.adaptiveConcurrency.enabled, s.replicas.contains(where: { $0.window != nil && !$0.samples.isEmpty }) {
            consider(s.lastAdaptive + config.adaptiveConcurrency.interval)
        }
        for r in s.replicas where !r.removed { consider(r.capacity.learned?.nextLook) }
        return next
    }

    /// The waiting request's own next deadline: its total timeout, and for an urgent lane the
    /// moment a preemption must be asked for at the latest.
    func deadline(of w: Waiting, now: Duration) -> Duration {
        var t = w.giveUpAt
        if urgentLanes.contains(w.request.lane), !w.preemptionAsked, let startBy = w.request.deadline {
            t = Swift.min(t, startBy - config.preemptionLead - tickInterval * 2)
        }
        return t
    }

    /// Work is due at `t`, sooner than the ticker will look: ring it.
    func armLocked(_ s: inout State, _ t: Duration) {
        guard t < s.armedUntil else { return }
        s.armedUntil = t
        doorbell.ring()
    }

    /// A queued request of an urgent lane that would miss its start deadline while every slot it
    /// could use is held: the youngest preemptible request of a lower band is stopped (its proxy
    /// requeues it first in its queue). Not before it is needed: while some in-flight request is
    /// expected to finish (its lane's usual service time) early enough, counting the time the
    /// engine takes to stop a cancelled generation (`preemption_lead`), the request waits.
    func preemptLocked(_ s: inout State, now: Duration) {
        guard !s.urgent.isEmpty else { return }
        let lead = config.preemptionLead + tickInterval * 2
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
        }
    }

    func adaptLocked(_ s: inout State) {
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

    /// Latest `/metrics` of a replica (nil `signals` with `unsupported`: it has none). Returns
    /// what it changed in a learned window.
    @discardableResult
    package func recordSignals(_ index: Int, _ signals: BackendSignals?, unsupported: Bool = false) -> LearnedWindow.Change? {
        let now = self.now
        let (change, resumptions) = state.withLock { s -> (LearnedWindow.Change?, [Resumption]) in
            guard s.replicas.indices.contains(index) else { return (nil, []) }
            var change: LearnedWindow.Change?
            if let signals {
                s.replicas[index].signals = signals
                change = learn(&s, index, from: signals, now: now)
            }
            s.replicas[index].metricsUnsupported = unsupported
            return (change, dispatchLocked(&s, now: now))
        }
        resume(resumptions)
        return change
    }

    /// A request on this replica was cancelled (preempted, or its client left). llama.cpp notices
    /// a closed connection of a non-streaming request only after a second with no other result
    /// on its queue, and every `/metrics` scrape is such a result: scraping pauses meanwhile, or
    /// the cancelled generation runs on and holds the slot that was just freed.
    package func noteCancelled(_ index: Int, quiet: Duration = .milliseconds(1500)) {
        let now = self.now
        state.withLock { $0.replicas[index].quietUntil = now + quiet }
    }

    /// True while scraping this replica should pause (a cancellation is being noticed).
    package func isQuiet(_ index: Int) -> Bool {
        let now = self.now
        return state.withLock { s in s.replicas[index].quietUntil.map { $0 > now } ?? false }
    }

    /// Pool time (seconds since the pool was made), the clock of ``BackendSignals/scrapedAt``.
    package var clock: Duration { now }
}
