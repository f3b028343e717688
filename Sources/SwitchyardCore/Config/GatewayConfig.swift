/// The whole gateway configuration, as decoded from YAML and validated by ``ConfigLoader``.
///
/// Every field has a default, so an empty file (or only `--upstream` flags) is a valid config.
package struct GatewayConfig: Sendable, Equatable {
    package var server = ServerConfig()
    package var upstream = UpstreamConfig()
    package var health = HealthCheckConfig()
    package var outlier = OutlierConfig()
    package var retry = RetryConfig()
    package var admin = AdminConfig()
    /// Tenants' quotas kept in PostgreSQL across gateway replicas; nil: per replica.
    package var limits: SharedLimitsConfig?
    /// API keys → tenants. Empty: no authentication, one anonymous tenant.
    package var tenants: [TenantConfig] = []
    /// realtime, streaming, batch (always present) and any others configured, by priority.
    package var lanes: [LaneConfig] = LaneConfig.defaults
    package var models: [ModelConfig] = []
    package var batch = BatchConfig()

    package init() {}

    package func lane(named name: String) -> LaneConfig? {
        lanes.first { $0.name == name }
    }

    package func model(named name: String) -> ModelConfig? {
        models.first { $0.name == name }
    }
}

package struct ServerConfig: Sendable, Equatable {
    package var host = "127.0.0.1"
    package var port = 8080
    /// Largest accepted request body; larger bodies get 413.
    package var maxBodyBytes = 4 * 1024 * 1024
    /// How long in-flight requests may run on once the listener stopped accepting.
    package var shutdownGrace: Duration = .seconds(30)
    /// After SIGTERM/SIGINT, `/readyz` answers 503 at once but the listener keeps accepting this
    /// long, so load balancers can take the pod out before connections are refused.
    package var drainDelay: Duration = .seconds(5)
    /// Serve uncontended completions on the event loop (see the gateway's `FastPath`); off
    /// sends every request through the router.
    package var fastPath = true
    package var limits = ClientLimits()
    /// HTTPS on the listener; nil: plain HTTP.
    package var tls: ListenerTLSConfig?
    package init() {}
}

/// The listener's certificate and key (PEM files, read again on SIGHUP) and, optionally, the CA
/// whose client certificates it asks for (mTLS; see ``AdminConfig/clientCertificate``).
package struct ListenerTLSConfig: Sendable, Equatable {
    /// The certificate chain, leaf first.
    package var certFile: String
    package var keyFile: String
    /// Client certificates are asked for and, when presented, must chain to this CA; a
    /// connection presenting another is refused in the handshake.
    package var clientCAFile: String?
    package init(certFile: String, keyFile: String, clientCAFile: String? = nil) {
        self.certFile = certFile
        self.keyFile = keyFile
        self.clientCAFile = clientCAFile
    }
}

/// What one client connection may cost: limits against slow or hostile clients. Each refusal is
/// counted in `switchyard_refused_total{reason}` and answered in OpenAI's error shape when HTTP
/// still allows an answer.
package struct ClientLimits: Sendable, Equatable {
    /// Request line and headers together; larger → 431.
    package var maxHeaderBytes = 32 * 1024
    /// Header fields per request; more → 431.
    package var maxHeaders = 100
    /// From a request's first byte until its headers are complete (slow-loris); then → 408.
    package var headerReadTimeout: Duration = .seconds(10)
    /// Longest pause while a request body is arriving; then → 408.
    package var bodyIdleTimeout: Duration = .seconds(30)
    /// A keep-alive connection with no request in progress is closed after this.
    package var idleTimeout: Duration = .seconds(75)
    /// Open connections from one client address (0 = unlimited); more → 429, then closed.
    package var maxConnectionsPerClient = 1024
    package init() {}
}

package struct TenantConfig: Sendable, Equatable {
    package var name: String
    /// Lowercase hex SHA-256 of the tenant's API key (the key itself is never stored).
    package var apiKeySHA256: String
    /// Share of capacity under contention (VTC weight).
    package var weight: Double = 1
    /// Quotas over every lane; empty: none.
    package var limits = RateLimits()
    /// Quotas in one lane, beside `limits`.
    package var laneLimits: [String: RateLimits] = [:]
    /// Streaming requests in flight at most (nil: unlimited); more → 429.
    package var maxConcurrentStreams: Int?

    package init(name: String, apiKeySHA256: String, weight: Double = 1) {
        self.name = name
        self.apiKeySHA256 = apiKeySHA256
        self.weight = weight
    }
}

/// Requests and tokens a tenant may use (token buckets per minute, a budget per UTC day).
package struct RateLimits: Sendable, Equatable {
    package var requestsPerMinute: Int?
    package var tokensPerMinute: Int?
    package var tokensPerDay: Int?
    package init(requestsPerMinute: Int? = nil, tokensPerMinute: Int? = nil, tokensPerDay: Int? = nil) {
        self.requestsPerMinute = requestsPerMinute
        self.tokensPerMinute = tokensPerMinute
        self.tokensPerDay = tokensPerDay
    }
    package var isEmpty: Bool { requestsPerMinute == nil && tokensPerMinute == nil && tokensPerDay == nil }
    static let fields = ["requests_per_minute", "tokens_per_minute", "tokens_per_day"]
}

package struct AdminConfig: Sendable, Equatable {
    /// Bearer token for `/admin/*`; admin endpoints answer 403 while it is unset.
    package var token: String?
    /// A client certificate from `server.tls.client_ca` is required on `/admin/*` (beside the
    /// token, when one is set). On by default once `client_ca` is set.
    package var clientCertificate = false
    /// Common names allowed on `/admin/*` when a client certificate is required; empty: any
    /// certificate the client CA issued.
    package var clientSubjects: [String] = []
    package init() {}
}

package struct TimeoutConfig: Sendable, Equatable {
    /// Request sent → response head received.
    package var firstByte: Duration = .seconds(60)
    /// Longest gap between two body chunks of a response.
    package var idle: Duration = .seconds(30)
    /// Whole request, retries included.
    package var total: Duration = .seconds(600)
    package init() {}
}

package struct UpstreamConfig: Sendable, Equatable {
    package var connectTimeout: Duration = .seconds(2)
    package var timeouts = TimeoutConfig()
    /// Upper bound on pooled HTTP/1.1 connections per backend.
    package var maxConnectionsPerBackend = 1024
    /// Idle pooled connections are closed after this; shorter than the 5 s keep-alive timeout of
    /// uvicorn (vLLM, SGLang) and cpp-httplib (llama.cpp), so the gateway closes them first.
    package var idleConnectionTimeout: Duration = .seconds(4)
    /// Requests in flight per backend whose capacity is neither configured, reported by an info
    /// endpoint, nor learnable from its metrics: the rest wait in the lanes (no connect storms).
    package var defaultMaxInflight = 256
    /// Limit of each capacity-discovery request (`/props`, `/get_server_info`, `/info`, `/metrics`).
    package var discoveryTimeout: Duration = .seconds(2)
    /// PEM file of the CA(s) that `https://` backends' certificates must chain to (instead of
    /// the system's roots); the host name is checked either way.
    package var caFile: String?
    package init() {}
}

package struct HealthCheckConfig: Sendable, Equatable {
    package var enabled = true
    package var interval: Duration = .seconds(5)
    package var timeout: Duration = .seconds(2)
    package var healthyThreshold = 1
    package var unhealthyThreshold = 2

    /// Path probed on the backend's origin (scheme://host:port), e.g. `/health` (vLLM, llama.cpp,
    /// SGLang, TGI). A path that does not start with `/` is resolved against the OpenAI base URL.
    package var path = "/health"
    package init() {}
}

package struct OutlierConfig: Sendable, Equatable {
    /// Consecutive request failures that eject a backend.
    package var consecutiveFailures = 3
    package var baseEjection: Duration = .seconds(5)
    package var maxEjection: Duration = .seconds(300)
    package init() {}
}

package struct RetryConfig: Sendable, Equatable {
    /// Attempts per request on one model pool, the first included.
    package var maxAttempts = 3
    /// Retries may add at most this fraction of extra requests over `budgetWindow`.
    package var budgetRatio = 0.2
    package var budgetWindow: Duration = .seconds(10)
    /// Retries always allowed per window, so a quiet gateway can still retry.
    package var minRetriesPerWindow = 3
    /// Longest `Retry-After` from a backend that is honoured by waiting; longer → next replica.
    package var maxRetryAfter: Duration = .seconds(2)
    package init() {}
}

package enum RoutingPolicy: String, Sendable, Equatable, CaseIterable {
    case leastOutstanding = "least_outstanding"
    case prefixAffinity = "prefix_affinity"
}

package struct RoutingConfig: Sendable, Equatable {
    package var policy: RoutingPolicy = .leastOutstanding
    /// Characters of the prompt (or of the messages' contents) hashed for prefix affinity.
    package var prefixChars = 512
    /// ε of bounded-load affinity: a replica above (1+ε)× the average load is skipped.
    package var balanceFactor = 0.25
    package init() {}
}

package struct BackendConfig: Sendable, Equatable {
    /// The server's OpenAI base URL, e.g. `http://127.0.0.1:8000/v1`.
    package var url: String
    /// Model name sent upstream; defaults to the public name.
    package var upstreamModel: String?
    package var weight: Double = 1
    /// Requests in flight at most (0 = unlimited). Nil: discovered from the engine (llama.cpp
    /// `/props`, SGLang `/get_server_info`, TGI `/info`) or learned from its waiting queue.
    package var maxInflight: Int?
    /// Started by Switchyard: routed to only once its supervisor says it is warmed up.
    package var managed = false

    package init(url: String, upstreamModel: String? = nil, weight: Double = 1, maxInflight: Int? = nil) {
        self.url = url
        self.upstreamModel = upstreamModel
        self.weight = weight
        self.maxInflight = maxInflight
    }
}

package struct ModelConfig: Sendable, Equatable {
    package var name: String
    package var backends: [BackendConfig]
    package var routing = RoutingConfig()
    /// Models tried in order when every replica of this pool failed.
    package var fallback: [String] = []
    package var timeouts: TimeoutConfig?
    /// How long a request may wait for a free slot when every replica is at `max_inflight`.
    package var queueTimeout: Duration = .seconds(30)
    /// Backends found at run time (DNS, Kubernetes EndpointSlices), beside `backends`.
    package var discovery: DiscoveryConfig?
    /// Model servers Switchyard runs itself; their replicas are appended to `backends`.
    package var managed: ManagedConfig?
    package var batching = BatchingConfig()
    /// KV-cache watermark from the backends' `/metrics`; nil → not scraped.
    package var memoryHeadroom: MemoryHeadroomConfig?
    package var adaptiveConcurrency = AdaptiveConcurrencyConfig()
    /// Time the engine needs to stop a cancelled generation: preemption is issued this long
    /// before a waiting request's deadline. llama.cpp notices a closed connection within ~1 s.
    package var preemptionLead: Duration = .seconds(1)

    package init(name: String, backends: [BackendConfig]) {
        self.name = name
        self.backends = backends
    }
}

/// `limits: { shared: postgres://…, sync_interval: 1s }`: the replicas trade their tenants' usage
/// through PostgreSQL every `sync_interval`, so a quota holds across all of them (approximately:
/// what others admitted in the last interval is not seen yet).
package struct SharedLimitsConfig: Sendable, Equatable {
    /// `postgres://user@host:port/database?sslmode=…` (a password only as `${ENV}`).
    package var url: String
    package var passwordFile: String?
    package var syncInterval: Duration = .seconds(1)
    package init(url: String) { self.url = url }
}
