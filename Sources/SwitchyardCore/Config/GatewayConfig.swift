/// The whole gateway configuration, as decoded from YAML and validated by ``ConfigLoader``.
///
/// Every field has a default, so an empty file (or only `--upstream` flags) is a valid config.
public struct GatewayConfig: Sendable, Equatable {
    public var server = ServerConfig()
    public var upstream = UpstreamConfig()
    public var health = HealthCheckConfig()
    public var outlier = OutlierConfig()
    public var retry = RetryConfig()
    public var admin = AdminConfig()
    /// API keys → tenants. Empty: no authentication, one anonymous tenant.
    public var tenants: [TenantConfig] = []
    /// realtime, streaming, batch (always present) and any others configured, by priority.
    public var lanes: [LaneConfig] = LaneConfig.defaults
    public var models: [ModelConfig] = []

    public init() {}

    public func lane(named name: String) -> LaneConfig? {
        lanes.first { $0.name == name }
    }

    public func model(named name: String) -> ModelConfig? {
        models.first { $0.name == name }
    }
}

public struct ServerConfig: Sendable, Equatable {
    public var host = "127.0.0.1"
    public var port = 8080
    /// Largest accepted request body; larger bodies get 413.
    public var maxBodyBytes = 4 * 1024 * 1024
    /// How long in-flight requests may run on after SIGTERM/SIGINT.
    public var shutdownGrace: Duration = .seconds(30)
    /// Serve uncontended completions on the event loop (see the gateway's `FastPath`); off
    /// sends every request through the router.
    public var fastPath = true
    public init() {}
}

public struct TenantConfig: Sendable, Equatable {
    public var name: String
    /// Lowercase hex SHA-256 of the tenant's API key (the key itself is never stored).
    public var apiKeySHA256: String
    /// Share of capacity under contention (VTC weight).
    public var weight: Double = 1

    public init(name: String, apiKeySHA256: String, weight: Double = 1) {
        self.name = name
        self.apiKeySHA256 = apiKeySHA256
        self.weight = weight
    }
}

public struct AdminConfig: Sendable, Equatable {
    /// Bearer token for `/admin/*`; admin endpoints answer 403 while it is unset.
    public var token: String?
    public init() {}
}

public struct TimeoutConfig: Sendable, Equatable {
    /// Request sent → response head received.
    public var firstByte: Duration = .seconds(60)
    /// Longest gap between two body chunks of a response.
    public var idle: Duration = .seconds(30)
    /// Whole request, retries included.
    public var total: Duration = .seconds(600)
    public init() {}
}

public struct UpstreamConfig: Sendable, Equatable {
    public var connectTimeout: Duration = .seconds(2)
    public var timeouts = TimeoutConfig()
    /// Upper bound on pooled HTTP/1.1 connections per backend.
    public var maxConnectionsPerBackend = 1024
    /// Idle pooled connections are closed after this; shorter than the 5 s keep-alive timeout of
    /// uvicorn (vLLM, SGLang) and cpp-httplib (llama.cpp), so the gateway closes them first.
    public var idleConnectionTimeout: Duration = .seconds(4)
    /// Requests in flight per backend whose capacity is neither configured, reported by an info
    /// endpoint, nor learnable from its metrics: the rest wait in the lanes (no connect storms).
    public var defaultMaxInflight = 256
    /// Limit of each capacity-discovery request (`/props`, `/get_server_info`, `/info`, `/metrics`).
    public var discoveryTimeout: Duration = .seconds(2)
    public init() {}
}

public struct HealthCheckConfig: Sendable, Equatable {
    public var enabled = true
    public var interval: Duration = .seconds(5)
    public var timeout: Duration = .seconds(2)
    public var healthyThreshold = 1
    public var unhealthyThreshold = 2

    /// Path probed on the backend's origin (scheme://host:port), e.g. `/health` (vLLM, llama.cpp,
    /// SGLang, TGI). A path that does not start with `/` is resolved against the OpenAI base URL.
    public var path = "/health"
    public init() {}
}

public struct OutlierConfig: Sendable, Equatable {
    /// Consecutive request failures that eject a backend.
    public var consecutiveFailures = 3
    public var baseEjection: Duration = .seconds(5)
    public var maxEjection: Duration = .seconds(300)
    public init() {}
}

public struct RetryConfig: Sendable, Equatable {
    /// Attempts per request on one model pool, the first included.
    public var maxAttempts = 3
    /// Retries may add at most this fraction of extra requests over `budgetWindow`.
    public var budgetRatio = 0.2
    public var budgetWindow: Duration = .seconds(10)
    /// Retries always allowed per window, so a quiet gateway can still retry.
    public var minRetriesPerWindow = 3
    /// Longest `Retry-After` from a backend that is honoured by waiting; longer → next replica.
    public var maxRetryAfter: Duration = .seconds(2)
    public init() {}
}

public enum RoutingPolicy: String, Sendable, Equatable, CaseIterable {
    case leastOutstanding = "least_outstanding"
    case prefixAffinity = "prefix_affinity"
}

public struct RoutingConfig: Sendable, Equatable {
    public var policy: RoutingPolicy = .leastOutstanding
    /// Characters of the prompt (or of the messages' contents) hashed for prefix affinity.
    public var prefixChars = 512
    /// ε of bounded-load affinity: a replica above (1+ε)× the average load is skipped.
    public var balanceFactor = 0.25
    public init() {}
}

public struct BackendConfig: Sendable, Equatable {
    /// The server's OpenAI base URL, e.g. `http://127.0.0.1:8000/v1`.
    public var url: String
    /// Model name sent upstream; defaults to the public name.
    public var upstreamModel: String?
    public var weight: Double = 1
    /// Requests in flight at most (0 = unlimited). Nil: discovered from the engine (llama.cpp
    /// `/props`, SGLang `/get_server_info`, TGI `/info`) or learned from its waiting queue.
    public var maxInflight: Int?
    /// Started by Switchyard: routed to only once its supervisor says it is warmed up.
    public var managed = false

    public init(url: String, upstreamModel: String? = nil, weight: Double = 1, maxInflight: Int? = nil) {
        self.url = url
        self.upstreamModel = upstreamModel
        self.weight = weight
        self.maxInflight = maxInflight
    }
}

public struct ModelConfig: Sendable, Equatable {
    public var name: String
    public var backends: [BackendConfig]
    public var routing = RoutingConfig()
    /// Models tried in order when every replica of this pool failed.
    public var fallback: [String] = []
    public var timeouts: TimeoutConfig?
    /// How long a request may wait for a free slot when every replica is at `max_inflight`.
    public var queueTimeout: Duration = .seconds(30)
    /// Model servers Switchyard runs itself; their replicas are appended to `backends`.
    public var managed: ManagedConfig?
    public var batching = BatchingConfig()
    /// KV-cache watermark from the backends' `/metrics`; nil → not scraped.
    public var memoryHeadroom: MemoryHeadroomConfig?
    public var adaptiveConcurrency = AdaptiveConcurrencyConfig()
    /// Time the engine needs to stop a cancelled generation: preemption is issued this long
    /// before a waiting request's deadline. llama.cpp notices a closed connection within ~1 s.
    public var preemptionLead: Duration = .seconds(1)

    public init(name: String, backends: [BackendConfig]) {
        self.name = name
        self.backends = backends
    }
}
