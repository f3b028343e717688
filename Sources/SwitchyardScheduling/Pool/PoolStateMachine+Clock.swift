import SwitchyardCore

/// Timeouts, preemption, adaptive windows: the pool's work on a clock.
extension PoolStateMachine {
    /// Queue depth per lane and each replica's window, for metrics.
    package struct TickReport: Sendable {
        package var queueDepth: [(lane: String, depth: Int)] = []
        package var windows: [(backend: String, window: Int)] = []
        /// Learned and default windows that grew this tick.
        package var capacityChanges: [(backend: String, change: LearnedWindow.Change)] = []
        /// When the pool next has work on the clock (pool time); nil: none until something
        /// happens (which sets ``Effects/wake``).
        package var next: Duration?
    }

    /// Timeout actions, total timeouts of queued requests, preemption and the AIMD and learned
    /// windows; called at the deadline the last call returned (``TickReport/next``), sooner when
    /// ``Effects/wake`` was set, and a few times a second for metrics.
    package mutating func tick(now: Duration) -> TickReport {
        var report = TickReport()
        for request in scheduler.expire(now: now) { fail(request.id, .queueTimeout) }
        for (id, w) in waiting where now >= w.giveUpAt {
            _ = scheduler.remove(id: id, lane: w.request.lane, tenant: w.request.tenant)
            fail(id, .queueTimeout)
        }
        preempt(now: now)
        if config.adaptiveConcurrency.enabled, now - lastAdaptive >= config.adaptiveConcurrency.interval {
            lastAdaptive = now
            adapt()
        }
        report.capacityChanges = growLearned(now: now)
        dispatch(now: now)
        report.queueDepth = lanes.keys.sorted().map { ($0, scheduler.queued(lane: $0)) }
        report.windows = replicas.filter { !$0.removed }.map { ($0.backend.id, limit($0)) }
        let next = nextDeadline(now: now)
        armedUntil = next ?? Self.unarmed
        report.next = next
        return report
    }

    mutating func fail(_ id: UInt64, _ error: AcquireError) {
        guard waiting.removeValue(forKey: id) != nil else { return }
        urgent.remove(id)
        effects.decided.append((id, .failure(error)))
    }

    /// When the pool next has work on the clock: a queued request's lane deadline or total
    /// timeout, an urgent request's preemption check, the end of a cooldown or an ejection while
    /// requests wait, an adaptive or learned window's next look. Nil: nothing until an event.
    func nextDeadline(now: Duration) -> Duration? {
        var next: Duration?
        func consider(_ t: Duration?) {
            guard let t else { return }
            next = Swift.min(next ?? t, Swift.max(t, now))
        }
        // `expire` takes requests strictly past their deadline.
        consider(scheduler.earliestDeadline.map { $0 + .milliseconds(1) })
        for w in waiting.values { consider(deadline(of: w)) }
        if !waiting.isEmpty {
            for r in replicas where !r.removed {
                if let until = r.coolingUntil, until > now { consider(until) }
                if case .ejected(let until) = r.outlier.state { consider(until) }
            }
        }
        if config.adaptiveConcurrency.enabled, replicas.contains(where: { $0.window != nil && !$0.samples.isEmpty }) {
            consider(lastAdaptive + config.adaptiveConcurrency.interval)
        }
        for r in replicas where !r.removed { consider(r.capacity.learned?.nextLook) }
        return next
    }

    /// The waiting request's own next deadline: its total timeout, and for an urgent lane the
    /// moment a preemption must be asked for at the latest.
    func deadline(of w: Waiting) -> Duration {
        var t = w.giveUpAt
        if urgentLanes.contains(w.request.lane), !w.preemptionAsked, let startBy = w.request.deadline {
            t = Swift.min(t, Swift.max(startBy - config.preemptionLead - slack * 2, w.recheckAt ?? .zero))
        }
        return t
    }

    /// Work is due at `t`, sooner than the timer will fire: wake it.
    mutating func arm(_ t: Duration) {
        guard t < armedUntil else { return }
        armedUntil = t
        effects.wake = true
    }

    /// A queued request of an urgent lane that would miss its start deadline while every slot it
    /// could use is held: the youngest preemptible request of a lower band is stopped (its proxy
    /// requeues it first in its queue). Not before it is needed: while some in-flight request is
    /// expected to finish (its lane's usual service time) early enough, counting the time the
    /// engine takes to stop a cancelled generation (`preemption_lead`), the request waits.
    mutating func preempt(now: Duration) {
        guard !urgent.isEmpty else { return }
        let lead = config.preemptionLead + slack * 2
        for id in urgent {
            guard let w = waiting[id], !w.preemptionAsked, let startBy = w.request.deadline else { continue }
            var soonestFree: Duration?
            var victim: (replica: Int, lease: UInt64, started: Duration)?
            for i in replicas.indices where !w.ticket.excluding.contains(i) && isEligible(at: i, now: now) {
                for (leaseID, lease) in replicas[i].leases {
                    let expected = serviceByLane[lease.lane] ?? serviceSeconds
                    let remaining = expected.map { Swift.max(.zero, .seconds($0) - (now - lease.started)) }
                    if let remaining { soonestFree = soonestFree.map { Swift.min($0, remaining) } ?? remaining }
                    if lease.priority > w.priority, lease.signal?.isArmed == true, victim == nil || lease.started > victim!.started {
                        victim = (i, leaseID, lease.started)
                    }
                }
            }
            guard now + (soonestFree ?? .zero) + lead >= startBy || (soonestFree == nil && now + lead >= startBy) else {
                if now >= startBy - lead { waiting[id]!.recheckAt = now + slack }
                continue
            }
            guard let victim, let signal = replicas[victim.replica].leases[victim.lease]?.signal else {
                // Nothing to stop now: look again after the timer's slack, not at once (the
                // check's time has passed, so without this the timer would spin until the deadline).
                waiting[id]!.recheckAt = now + slack
                continue
            }
            waiting[id]!.preemptionAsked = true
            effects.preempt.append((id, signal))
        }
    }

    /// The preemption asked for `waiting` came too late (the victim's answer had reached its
    /// client): the next tick looks for another victim.
    package mutating func preemptionRefused(_ waiting: UInt64) {
        guard self.waiting[waiting] != nil else { return }
        self.waiting[waiting]!.preemptionAsked = false
        arm(deadline(of: self.waiting[waiting]!))
    }

    mutating func adapt() {
        for i in replicas.indices where replicas[i].window != nil {
            let samples = replicas[i].samples
            replicas[i].samples = Samples()
            var deferrals = 0
            var preemptions = 0
            if let signals = replicas[i].signals {
                deferrals = Int(signals.waiting ?? 0)
                if let total = signals.deferredTotal { deferrals += Int(max(0, total - (replicas[i].lastDeferred ?? total))) }
                if let total = signals.preemptionsTotal { preemptions = Int(max(0, total - (replicas[i].lastPreemptions ?? total))) }
                replicas[i].lastDeferred = signals.deferredTotal
                replicas[i].lastPreemptions = signals.preemptionsTotal
            }
            let observation = AdaptiveConcurrency.Observation(
                tpotP95: Self.p95(samples.tpot).map { Duration.seconds($0) }, ttftP95: Self.p95(samples.ttft).map { Duration.seconds($0) },
                overloadAnswers: samples.overloads, deferrals: deferrals, preemptions: preemptions)
            // No traffic, no evidence: hold.
            if samples.ttft.isEmpty, samples.tpot.isEmpty, observation == AdaptiveConcurrency.Observation() { continue }
            replicas[i].window!.update(observation)
        }
    }

    static func p95(_ values: [Double]) -> Double? {
        guard !values.isEmpty else { return nil }
        let sorted = values.sorted()
        return sorted[min(sorted.count - 1, Int((Double(sorted.count) * 0.95).rounded(.up)) - 1)]
    }
}
