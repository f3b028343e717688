/// One traffic lane: its SLO, queue policy, retry behaviour and share of capacity.
///
/// Lanes map to strict priority bands (`priority` 0 first); `min_share` keeps a lower band from
/// starving. Every configuration has the three standard lanes; `lanes:` in YAML overrides fields
/// of them (or adds more).
public struct LaneConfig: Sendable, Equatable {
    public enum TimeoutAction: String, Sendable, Equatable, CaseIterable {
        /// Answer 503 `queue_timeout` (Triton's REJECT).
        case reject
        /// Move behind the band's other requests and keep waiting (Triton's DELAY): never dropped.
        case delay
    }

    public struct SLO: Sendable, Equatable {
        public var ttft: Duration?
        public var tpot: Duration?
        public var e2e: Duration?
        /// Longest gap between two chunks of a stream.
        public var maxStall: Duration?
        public init(ttft: Duration? = nil, tpot: Duration? = nil, e2e: Duration? = nil, maxStall: Duration? = nil) {
            self.ttft = ttft
            self.tpot = tpot
            self.e2e = e2e
            self.maxStall = maxStall
        }
    }

    public struct Queue: Sendable, Equatable {
        /// Requests waiting in this lane at most (per model pool); beyond → 429 at once.
        public var maxSize = 1024
        /// Longest wait for a slot; nil → the model's `queue_timeout`.
        public var timeout: Duration?
        public var timeoutAction: TimeoutAction = .reject
        public init() {}
    }

    public struct Retry: Sendable, Equatable {
        /// Attempts per model pool, the first included; nil → `retry.max_attempts`.
        public var maxAttempts: Int?
        /// Pause before each retry.
        public var backoff: Duration = .zero
        public init() {}
    }

    public var name: String
    public var priority: Int
    /// Share of dispatches this lane's band gets while backlogged, against starvation (0…<1).
    public var minShare = 0.0
    /// Shed at arrival (503) when every replica's engine reports saturation.
    public var sheddable = false
    /// In-flight requests of this lane may be cancelled and requeued when a higher band would
    /// miss its deadline because every slot is taken.
    public var preemptible = false
    /// Preemptions per request at most; then it runs to completion.
    public var maxPreemptions = 3
    public var slo = SLO()
    public var queue = Queue()
    public var retry = Retry()

    public init(name: String, priority: Int) {
        self.name = name
        self.priority = priority
    }

    public static let realtime = "realtime"
    public static let streaming = "streaming"
    public static let batch = "batch"

    /// Without a `lanes:` block: realtime and streaming share the top band; batch runs below them
    /// with a 10% floor, is preemptible and waits rather than failing when its queue time is up.
    public static var defaults: [LaneConfig] {
        let realtime = LaneConfig(name: Self.realtime, priority: 0)
        let streaming = LaneConfig(name: Self.streaming, priority: 0)
        var batch = LaneConfig(name: Self.batch, priority: 1)
        batch.minShare = 0.1
        batch.preemptible = true
        batch.queue.maxSize = 100_000
        batch.queue.timeoutAction = .delay
        return [realtime, streaming, batch]
    }
}

/// Per-replica batching limits the scheduler enforces before dispatch.
public struct BatchingConfig: Sendable, Equatable {
    /// Requests in flight per replica at most (nil → the backend's `max_inflight`). Also the
    /// largest merged embeddings request.
    public var maxBatchSize: Int?
    /// Prompt + max output tokens in flight per replica at most (nil → unlimited).
    public var maxBatchTokens: Int?
    /// Single-input embeddings wait at most this long to be merged (zero → no coalescing).
    public var maxQueueDelay: Duration = .zero
    public init() {}
}

/// Dispatch only while the engine reports KV-cache room, from its `/metrics`.
public struct MemoryHeadroomConfig: Sendable, Equatable {
    public var kvCacheMax = 0.85
    /// Older metrics count as saturated.
    public var metricsStaleAfter: Duration = .seconds(3)
    public var scrapeInterval: Duration = .milliseconds(500)
    public init() {}
}

/// AIMD per-replica concurrency window between `min` and the engine's slot count.
public struct AdaptiveConcurrencyConfig: Sendable, Equatable {
    public var enabled = false
    public var min = 1
    public var interval: Duration = .seconds(2)
    public init() {}
}
