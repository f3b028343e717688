/// One traffic lane: its SLO, queue policy, retry behaviour and share of capacity.
///
/// Lanes map to strict priority bands (`priority` 0 first); `min_share` keeps a lower band from
/// starving. Every configuration has the three standard lanes; `lanes:` in YAML overrides fields
/// of them (or adds more).
package struct LaneConfig: Sendable, Equatable {
    package enum TimeoutAction: String, Sendable, Equatable, CaseIterable {
        /// Answer 503 `queue_timeout` (Triton's REJECT).
        case reject
        /// Move behind the band's other requests and keep waiting (Triton's DELAY): never dropped.
        case delay
    }

    package struct SLO: Sendable, Equatable {
        package var ttft: Duration?
        package var tpot: Duration?
        package var e2e: Duration?
        /// Longest gap between two chunks of a stream.
        package var maxStall: Duration?
        package init(ttft: Duration? = nil, tpot: Duration? = nil, e2e: Duration? = nil, maxStall: Duration? = nil) {
            self.ttft = ttft
            self.tpot = tpot
            self.e2e = e2e
            self.maxStall = maxStall
        }
    }

    package struct Queue: Sendable, Equatable {
        /// Requests waiting in this lane at most (per model pool); beyond → 429 at once.
        package var maxSize = 1024
        /// Longest wait for a slot; nil → the model's `queue_timeout`.
        package var timeout: Duration?
        package var timeoutAction: TimeoutAction = .reject
        package init() {}
    }

    package struct Retry: Sendable, Equatable {
        /// Attempts per model pool, the first included; nil → `retry.max_attempts`.
        package var maxAttempts: Int?
        /// Pause before each retry.
        package var backoff: Duration = .zero
        package init() {}
    }

    package var name: String
    package var priority: Int
    /// Share of dispatches this lane's band gets while backlogged, against starvation (0…<1).
    package var minShare = 0.0
    /// Shed at arrival (503) when every replica's engine reports saturation.
    package var sheddable = false
    /// In-flight requests of this lane may be cancelled and requeued when a higher band would
    /// miss its deadline because every slot is taken.
    package var preemptible = false
    /// Preemptions per request at most; then it runs to completion.
    package var maxPreemptions = 3
    /// Share of a pool's capacity (its replicas' slots) this lane may hold in flight at most, so
    /// live traffic finds free slots; nil: no cap.
    package var maxInflightShare: Double?
    package var slo = SLO()
    package var queue = Queue()
    package var retry = Retry()

    package init(name: String, priority: Int) {
        self.name = name
        self.priority = priority
    }

    /// How long after arrival a request of this lane may still start: its queue timeout (else
    /// the pool's `queue_timeout`), no later than its TTFT SLO, nor than the request's own timeout.
    package func startWithin(poolQueueTimeout: Duration, requestTimeout: Duration? = nil) -> Duration {
        var latest = queue.timeout ?? poolQueueTimeout
        if let ttft = slo.ttft { latest = min(latest, ttft) }
        if let requestTimeout { latest = min(latest, requestTimeout) }
        return latest
    }

    package static let realtime = "realtime"
    package static let streaming = "streaming"
    package static let batch = "batch"

    /// Without a `lanes:` block: realtime and streaming share the top band; batch runs below them
    /// with a 10% floor, is preemptible and waits rather than failing when its queue time is up.
    package static var defaults: [LaneConfig] {
        let realtime = LaneConfig(name: Self.realtime, priority: 0)
        let streaming = LaneConfig(name: Self.streaming, priority: 0)
        var batch = LaneConfig(name: Self.batch, priority: 1)
        batch.minShare = 0.1
        batch.preemptible = true
        batch.queue.maxSize = 100_000
        batch.queue.timeoutAction = .delay
        batch.maxInflightShare = BatchConfig.defaultMaxInflightShare
        return [realtime, streaming, batch]
    }
}

/// Per-replica batching limits the scheduler enforces before dispatch.
package struct BatchingConfig: Sendable, Equatable {
    /// Requests in flight per replica at most (nil → the backend's `max_inflight`). Also the
    /// largest merged embeddings request.
    package var maxBatchSize: Int?
    /// Prompt + max output tokens in flight per replica at most (nil → unlimited).
    package var maxBatchTokens: Int?
    /// Single-input embeddings wait at most this long to be merged (zero → no coalescing).
    package var maxQueueDelay: Duration = .zero
    package init() {}
}

/// Dispatch only while the engine reports KV-cache room, from its `/metrics`.
package struct MemoryHeadroomConfig: Sendable, Equatable {
    package var kvCacheMax = 0.85
    /// Older metrics count as saturated.
    package var metricsStaleAfter: Duration = .seconds(3)
    package var scrapeInterval: Duration = .milliseconds(500)
    package init() {}
}

/// AIMD per-replica concurrency window between `min` and the engine's slot count.
package struct AdaptiveConcurrencyConfig: Sendable, Equatable {
    package var enabled = false
    package var min = 1
    package var interval: Duration = .seconds(2)
    package init() {}
}
