import Prometheus
import SwitchyardCore
import Synchronization

/// The gateway's Prometheus metrics. Each gateway owns its registry (no global bootstrap), so
/// tests read the metrics of the instance they started.
public final class GatewayMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry

    /// LLM latencies run from milliseconds (TTFT on a warm GPU) to minutes (long generations).
    static let latencyBuckets: [Double] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300]
    static let ttftBuckets: [Double] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1, 2, 5, 10, 30]
    static let tpotBuckets: [Double] = [0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1]

    public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
    }

    /// Handles per label set, so the hot path skips the registry's label-array lookup.
    private struct RequestKey: Hashable {
        let model: String
        let lane: String
        let code: Int
    }

    private let requestHandles = Mutex<[RequestKey: (Counter, ValueHistogram)]>([:])
    private let inflightGauges = Mutex<[String: Gauge]>([:])

    public func requestFinished(model: String, lane: String, code: Int, duration: Double) {
        let key = RequestKey(model: model, lane: lane, code: code)
        let handles = requestHandles.withLock { cache in
            if let handles = cache[key] { return handles }
            let handles = (
                registry.makeCounter(descriptor: .init(metricName: "switchyard_requests_total", unitName: "", helpText: "Requests answered, by public model, lane and HTTP status."), labels: [("model", model), ("lane", lane), ("code", String(code))]),
                registry.makeValueHistogram(descriptor: .init(metricName: "switchyard_request_duration_seconds", unitName: "", helpText: "Time from request arrival to the last byte of the response."), labels: [("model", model), ("lane", lane)], buckets: Self.latencyBuckets)
            )
            cache[key] = handles
            return handles
        }
        handles.0.increment()
        handles.1.record(duration)
    }

    public func ttft(model: String, lane: String, seconds: Double) {
        registry.makeValueHistogram(descriptor: .init(metricName: "switchyard_ttft_seconds", unitName: "", helpText: "Time from request arrival to the first token-bearing chunk (streaming)."), labels: [("model", model), ("lane", lane)], buckets: Self.ttftBuckets)
            .record(seconds)
    }

    public func tpot(model: String, lane: String, seconds: Double) {
        registry.makeValueHistogram(descriptor: .init(metricName: "switchyard_tpot_seconds", unitName: "", helpText: "Time per output token after the first: (t_last - t_first) / (n_out - 1)."), labels: [("model", model), ("lane", lane)], buckets: Self.tpotBuckets)
            .record(seconds)
    }

    public func upstreamError(backend: String, kind: UpstreamErrorKind) {
        registry.makeCounter(descriptor: .init(metricName: "switchyard_upstream_errors_total", unitName: "", helpText: "Failed upstream attempts, by backend and kind."), labels: [("backend", backend), ("kind", kind.rawValue)]).increment()
    }

    public func retry(reason: String) {
        registry.makeCounter(descriptor: .init(metricName: "switchyard_retries_total", unitName: "", helpText: "Upstream attempts beyond the first, by reason."), labels: [("reason", reason)]).increment()
    }

    public func inflight(backend: String, _ value: Int) {
        let gauge = inflightGauges.withLock { cache in
            if let gauge = cache[backend] { return gauge }
            let gauge = registry.makeGauge(descriptor: .init(metricName: "switchyard_backend_inflight", unitName: "", helpText: "Requests in flight to a backend."), labels: [("backend", backend)])
            cache[backend] = gauge
            return gauge
        }
        gauge.set(to: Double(value))
    }


    public func healthy(backend: String, _ value: Bool) {
        registry.makeGauge(descriptor: .init(metricName: "switchyard_backend_healthy", unitName: "", helpText: "1 when the backend passes active checks and is not ejected."), labels: [("backend", backend)]).set(to: value ? 1.0 : 0.0)
    }

    public func outputTokens(model: String, _ count: Int) {
        registry.makeCounter(descriptor: .init(metricName: "switchyard_output_tokens_total", unitName: "", helpText: "Completion tokens served, from the backend's usage."), labels: [("model", model)]).increment(by: Int64(count))
    }

    /// Managed replica evidence: load, warmup and time-to-ready of the last start; restarts.
    public func replica(_ status: ReplicaStatus, previousRestarts: Int) {
        let labels = [("backend", status.url)]
        if let v = status.loadSeconds {
            registry.makeGauge(descriptor: .init(metricName: "switchyard_backend_load_seconds", unitName: "", helpText: "Managed replica: process start until the server answered its health check (last start)."), labels: labels).set(to: v)
        }
        if let v = status.warmupSeconds {
            registry.makeGauge(descriptor: .init(metricName: "switchyard_backend_warmup_seconds", unitName: "", helpText: "Managed replica: time spent on warmup requests (last start)."), labels: labels).set(to: v)
        }
        if let v = status.readySeconds {
            registry.makeGauge(descriptor: .init(metricName: "switchyard_backend_ready_seconds", unitName: "", helpText: "Managed replica: process start until ready for traffic (last start)."), labels: labels).set(to: v)
        }
        let restarts = registry.makeCounter(descriptor: .init(metricName: "switchyard_backend_restarts_total", unitName: "", helpText: "Managed replica restarts after an exit."), labels: labels)
        if status.restarts > previousRestarts { restarts.increment(by: Int64(status.restarts - previousRestarts)) }
        registry.makeGauge(descriptor: .init(metricName: "switchyard_backend_up", unitName: "", helpText: "Managed replica: 1 when ready for traffic."), labels: labels)
            .set(to: status.phase == .ready ? 1 : 0)
    }

    public func tenantTokens(tenant: String, kind: String, _ count: Int) {
        registry.makeCounter(descriptor: .init(metricName: "switchyard_tenant_tokens_total", unitName: "", helpText: "Tokens served per tenant, by kind (input, output), from the backend's usage."),
                             labels: [("tenant", tenant), ("kind", kind)]).increment(by: Int64(count))
    }

    static let queueWaitBuckets: [Double] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300]

    public func queueWait(lane: String, seconds: Double) {
        registry.makeValueHistogram(descriptor: .init(metricName: "switchyard_queue_wait_seconds", unitName: "", helpText: "Time a request waited in its lane's queue for a slot on a replica."),
                                    labels: [("lane", lane)], buckets: Self.queueWaitBuckets).record(seconds)
    }

    /// Requests refused or dropped by the scheduler: queue_full, deadline, saturated, queue_timeout.
    public func shed(lane: String, reason: String) {
        registry.makeCounter(descriptor: .init(metricName: "switchyard_shed_total", unitName: "", helpText: "Requests refused at admission or timed out in the queue, by lane and reason."),
                             labels: [("lane", lane), ("reason", reason)]).increment()
    }

    public func preempted(lane: String) {
        registry.makeCounter(descriptor: .init(metricName: "switchyard_preemptions_total", unitName: "", helpText: "In-flight requests stopped and requeued for a higher-priority lane."),
                             labels: [("lane", lane)]).increment()
    }

    public func slo(lane: String, slo: String, met: Bool) {
        registry.makeCounter(descriptor: .init(metricName: "switchyard_slo_total", unitName: "", helpText: "Requests per lane SLO (ttft, tpot, e2e, max_stall): met or missed; refused and failed requests miss."),
                             labels: [("lane", lane), ("slo", slo), ("result", met ? "met" : "missed")]).increment()
    }

    public func queueDepth(model: String, lane: String, _ depth: Int) {
        registry.makeGauge(descriptor: .init(metricName: "switchyard_queue_depth", unitName: "", helpText: "Requests waiting in a lane of a model pool."),
                           labels: [("model", model), ("lane", lane)]).set(to: Double(depth))
    }

    public func backendWindow(backend: String, _ window: Int) {
        registry.makeGauge(descriptor: .init(metricName: "switchyard_backend_window", unitName: "", helpText: "Current concurrency limit of a replica (adaptive window; 0 = unlimited)."),
                           labels: [("backend", backend)]).set(to: Double(window))
    }

    static let batchBuckets: [Double] = [1, 2, 4, 8, 16, 32, 64, 128]

    public func coalescedBatch(model: String, size: Int) {
        registry.makeValueHistogram(descriptor: .init(metricName: "switchyard_coalesced_batch_size", unitName: "", helpText: "Inputs per merged upstream embeddings request."),
                                    labels: [("model", model)], buckets: Self.batchBuckets).record(Double(size))
    }

    public func render() -> [UInt8] {
        var buffer: [UInt8] = []
        buffer.reserveCapacity(16 * 1024)
        registry.emit(into: &buffer)
        return buffer
    }
}

/// Why an upstream attempt failed, as the `kind` label of `switchyard_upstream_errors_total`.
public enum UpstreamErrorKind: String, Sendable {
    case connect
    case reset
    case firstByteTimeout = "first_byte_timeout"
    case idleTimeout = "idle_timeout"
    case totalTimeout = "total_timeout"
    case status429 = "status_429"
    case status503 = "status_503"
    case status5xx = "status_5xx"
    case malformed
    case inBandError = "in_band_error"
}
