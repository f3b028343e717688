import SwitchyardCore
import SwitchyardScheduling
import Synchronization

/// The end of an attempt: the slot returned, the backend's health and timing recorded.
extension ModelPool {
    /// What releasing a lease did: whether the replica was ejected, and its requests in flight now.
    package struct Released {
        package let ejected: Bool
        package let inflight: Int
    }

    /// Returns the slot and records what the attempt says about the backend's health; `usage`
    /// reconciles the tenant's fairness counter.
    @discardableResult
    package func release(_ lease: Lease, outcome: AttemptOutcome, usage: Usage? = nil, preempted: Bool = false) -> Released {
        let now = self.now
        let (resumptions, released) = state.withLock { s -> ([Resumption], Released) in
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
            case .failure:
                ejected = s.replicas[lease.index].outlier.recordFailure(now: now)
                if ejected, case .ejected(let until) = s.replicas[lease.index].outlier.state, !s.waiting.isEmpty { armLocked(&s, until) }
            case .neutral: if lease.isProbe { s.replicas[lease.index].outlier.cancelProbe() }
            }
            if lease.charged, !preempted {
                s.scheduler.complete(
                    lease.request, outputTokens: usage?.completionTokens ?? lease.request.maxOutputTokens,
                    inputTokens: usage?.promptTokens)
            }
            let resumptions = dispatchLocked(&s, now: now)
            return (resumptions, Released(ejected: ejected, inflight: s.replicas[lease.index].inflight))
        }
        resume(resumptions)
        return released
    }

    /// Feeds adaptive concurrency and the prefill-rate estimate: server-side time to first token
    /// (from the request being sent), time per output token, a 429/503 from the backend.
    package func observe(_ lease: Lease, ttft: Duration? = nil, tpot: Duration? = nil, promptTokens: Int? = nil, overloaded: Bool = false) {
        state.withLock { s in
            if let ttft {
                s.replicas[lease.index].samples.ttft.append(ttft.seconds)
                if let n = promptTokens, n > 0, ttft > .zero {
                    let rate = Double(n) / ttft.seconds
                    s.prefillTokensPerSecond = s.prefillTokensPerSecond.map { 0.8 * $0 + 0.2 * rate } ?? rate
                }
            }
            if let tpot { s.replicas[lease.index].samples.tpot.append(tpot.seconds) }
            // Read and cleared by the adaptive window and the learned capacity; bounded for
            // replicas that use neither.
            if s.replicas[lease.index].samples.ttft.count > 1024 { s.replicas[lease.index].samples.ttft.removeFirst(512) }
            if s.replicas[lease.index].samples.tpot.count > 1024 { s.replicas[lease.index].samples.tpot.removeFirst(512) }
            if overloaded { s.replicas[lease.index].samples.overloads += 1 }
        }
    }
}
