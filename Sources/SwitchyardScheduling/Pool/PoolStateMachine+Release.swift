import SwitchyardCore

/// The end of an attempt: the slot returned, the backend's health and timing recorded.
extension PoolStateMachine {
    /// What releasing a lease did: whether the replica was ejected, and its requests in flight now.
    package struct Released: Sendable {
        package let ejected: Bool
        package let inflight: Int
    }

    /// Returns the slot and records what the attempt says about the backend's health; `usage`
    /// reconciles the tenant's fairness counter. The slot goes to the next queued request.
    package mutating func release(_ lease: Lease, outcome: AttemptOutcome, usage: Usage? = nil, preempted: Bool = false, now: Duration) -> Released {
        replicas[lease.index].inflight -= 1
        loadIndex.set(lease.index, inflight: replicas[lease.index].inflight)
        replicas[lease.index].inflightTokens -= lease.request.inputTokens + lease.request.maxOutputTokens
        // Left out of a reload and now idle: it leaves the pool.
        if replicas[lease.index].retiring, replicas[lease.index].inflight == 0 { replicas[lease.index].removed = true }
        replicas[lease.index].leases.removeValue(forKey: lease.id)
        var ejected = false
        switch outcome {
        case .success:
            replicas[lease.index].outlier.recordSuccess()
            let seconds = (now - lease.started).seconds
            serviceSeconds = serviceSeconds.map { 0.8 * $0 + 0.2 * seconds } ?? seconds
            serviceByLane[lease.request.lane] = serviceByLane[lease.request.lane].map { 0.8 * $0 + 0.2 * seconds } ?? seconds
        case .failure:
            ejected = replicas[lease.index].outlier.recordFailure(now: now)
            if ejected, case .ejected(let until) = replicas[lease.index].outlier.state, !waiting.isEmpty { arm(until) }
        case .neutral: if lease.isProbe { replicas[lease.index].outlier.cancelProbe() }
        }
        if lease.charged, !preempted {
            scheduler.complete(
                lease.request, outputTokens: usage?.completionTokens ?? lease.request.maxOutputTokens, inputTokens: usage?.promptTokens)
        }
        dispatch(now: now)
        return Released(ejected: ejected, inflight: replicas[lease.index].inflight)
    }

    /// Feeds adaptive concurrency and the prefill-rate estimate: server-side time to first token
    /// (from the request being sent), time per output token, a 429/503 from the backend.
    /// Prompt tokens a first-token time must cover to count as a prefill-rate sample.
    package static let minimumPrefillSample = 256

    package mutating func observe(_ lease: Lease, ttft: Duration? = nil, tpot: Duration? = nil, promptTokens: Int? = nil, overloaded: Bool = false) {
        let i = lease.index
        // Only an adaptive window or a learned capacity reads the samples.
        let sampled = replicas[i].window != nil || replicas[i].capacity.learned != nil
        if let ttft {
            if sampled { replicas[i].samples.ttft.append(ttft.seconds) }
            // A short prompt's first token time is the engine's fixed overhead (and, on a loaded
            // host, scheduling noise), not prefill throughput: 4 tokens in 1 s is not a rate of 4/s.
            if let n = promptTokens, n >= Self.minimumPrefillSample, ttft > .zero {
                let rate = Double(n) / ttft.seconds
                prefillTokensPerSecond = prefillTokensPerSecond.map { 0.8 * $0 + 0.2 * rate } ?? rate
            }
        }
        if sampled, let tpot { replicas[i].samples.tpot.append(tpot.seconds) }
        // Read and cleared by the adaptive window and the learned capacity; bounded.
        if replicas[i].samples.ttft.count > 1024 { replicas[i].samples.ttft.removeFirst(512) }
        if replicas[i].samples.tpot.count > 1024 { replicas[i].samples.tpot.removeFirst(512) }
        if overloaded { replicas[i].samples.overloads += 1 }
    }
}
