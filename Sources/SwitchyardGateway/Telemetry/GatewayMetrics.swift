import Foundation
import Prometheus
import SwitchyardCore
import Synchronization

/// The gateway's Prometheus metrics. Each gateway owns its registry (no global bootstrap), so
/// tests read the metrics of the instance they started.
package final class GatewayMetrics: Sendable {
    package let registry: PrometheusCollectorRegistry

    /// LLM latencies run from milliseconds (TTFT on a warm GPU) to minutes (long generations).
    static let latencyBuckets: [Double] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300]
    static let ttftBuckets: [Double] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1, 2, 5, 10, 30]
    static let tpotBuckets: [Double] = [0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1]

    package init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
    }

    /// The one `switchyard_config_info{hash}` series, replaced at each reload.
    private let configInfoGauge = Mutex<Gauge?>(nil)

    /// `switchyard_config_info{hash} 1` for the configuration in force (one series at a time).
    package func configInfo(hash: String) {
        let gauge = registry.makeGauge(
            descriptor: .init(
                metricName: "switchyard_config_info", unitName: "",
                helpText: "The configuration in force: hash is the first 16 hex digits of the SHA-256 of its YAML."),
            labels: [("hash", hash)])
        gauge.set(1.0)
        let old = configInfoGauge.withLock { current in
            defer { current = gauge }
            return current
        }
        if let old, old !== gauge { registry.unregisterGauge(old) }
    }

    /// A client refused for what it sent or how: header_too_large, body_too_large, read_timeout,
    /// bad_request, connections_per_client.
    package func refused(reason: String) {
        counter(
            "switchyard_refused_total", help: "Clients refused by the connection and request limits, by reason.", [("reason", reason)]
        ).increment()
    }

    package func quotaRefused(tenant: String, limit: String) {
        counter(
            "switchyard_quota_refused_total", help: "Requests refused by a tenant's quota: requests, tokens, tokens_too_large, daily_tokens.",
            [("tenant", tenant), ("limit", limit)]
        ).increment()
    }

    package func discoveredBackends(model: String, source: String, _ count: Int) {
        gauge(
            "switchyard_discovered_backends", help: "Backends a discovery source (DNS, EndpointSlices) found at its last answer.",
            [("model", model), ("source", source)]
        ).set(to: Double(count))
    }

    package func discoveryError(model: String, source: String) {
        counter(
            "switchyard_discovery_errors_total", help: "Failed discovery lookups (the backends found before are kept).",
            [("model", model), ("source", source)]
        ).increment()
    }

    /// A configuration reload: `applied`, `unchanged` or `refused`.
    package func quotaSyncError() {
        counter("switchyard_quota_sync_errors_total", help: "Failed rounds of sharing quota usage through PostgreSQL (limits.shared).", [])
            .increment()
    }

    package func tlsCertificateExpiry(_ notAfter: Date) {
        gauge(
            "switchyard_tls_certificate_expiry_timestamp_seconds", help: "When the listener's certificate in force expires (Unix time).", []
        ).set(notAfter.timeIntervalSince1970)
    }

    package func tlsReload(result: String) {
        counter(
            "switchyard_tls_reloads_total", help: "Reloads of the listener's certificate and key, by result: applied, failed.", [("result", result)]
        )
        .increment()
    }

    package func configReload(result: String) {
        counter("switchyard_config_reloads_total", help: "Configuration reloads by result: applied, unchanged, refused.", [("result", result)])
            .increment()
        if result == "applied" {
            gauge(
                "switchyard_config_last_reload_timestamp_seconds", help: "When a reloaded configuration was last applied (Unix time).", []
            ).set(Date().timeIntervalSince1970)
        }
    }

    package func requestFinished(model: String, lane: String, code: Int, duration: Double) {
        counter(
            "switchyard_requests_total", help: "Requests answered, by public model, lane and HTTP status.",
            [("model", model), ("lane", lane), ("code", String(code))]
        )
        .increment()
        histogram(
            "switchyard_request_duration_seconds", help: "Time from request arrival to the last byte of the response.",
            [("model", model), ("lane", lane)], buckets: Self.latencyBuckets
        )
        .record(duration)
    }

    package func ttft(model: String, lane: String, seconds: Double) {
        histogram(
            "switchyard_ttft_seconds", help: "Time from request arrival to the first token-bearing chunk (streaming).",
            [("model", model), ("lane", lane)], buckets: Self.ttftBuckets
        )
        .record(seconds)
    }

    package func tpot(model: String, lane: String, seconds: Double) {
        histogram(
            "switchyard_tpot_seconds", help: "Time per output token after the first: (t_last - t_first) / (n_out - 1).",
            [("model", model), ("lane", lane)], buckets: Self.tpotBuckets
        )
        .record(seconds)
    }

    package func upstreamError(backend: String, kind: UpstreamErrorKind) {
        counter(
            "switchyard_upstream_errors_total", help: "Failed upstream attempts, by backend and kind.",
            [("backend", backend), ("kind", kind.rawValue)]
        ).increment()
    }

    /// Completions the event-loop fast path took (`served`), gave to the router after a failed
    /// attempt (`handed_back`), or left to the router from the start (`declined`: queueing,
    /// preemptible lane, invalid request, …).
    package func fastPath(_ outcome: String) {
        fastPathCounter(outcome).increment()
    }

    private func fastPathCounter(_ outcome: String) -> Counter {
        counter(
            "switchyard_fast_path_total", help: "Completion requests by event-loop fast path outcome: served, handed_back, declined.",
            [("outcome", outcome)])
    }

    /// The fast path's own per-request counts, resolved once: a lookup costs a hash and a lock,
    /// which shows at tens of thousands of requests per second.
    struct FastPathHandles: Sendable {
        let served: Counter
        let declined: Counter
        /// `switchyard_queue_wait_seconds` by lane (the fast path never waits: it records 0).
        let queueWait: [String: ValueHistogram]
    }

    func fastPathHandles(lanes: [String]) -> FastPathHandles {
        FastPathHandles(
            served: fastPathCounter("served"), declined: fastPathCounter("declined"),
            queueWait: Dictionary(lanes.map { ($0, queueWaitHistogram(lane: $0)) }, uniquingKeysWith: { a, _ in a }))
    }

    /// A stream paused because its client read slower than the backend wrote.
    package func clientBackpressure() {
        counter(
            "switchyard_client_backpressure_total", help: "Times a relayed stream stopped reading from its backend until a slow client caught up.", []
        ).increment()
    }

    /// Whether merged embeddings requests may go to a backend (its batching check).
    package func coalescingAllowed(backend: String, _ allowed: Bool) {
        gauge(
            "switchyard_coalescing_allowed", help: "1 when a backend's batched embeddings match its single ones (merged requests go to it).",
            [("backend", backend)]
        ).set(to: allowed ? 1 : 0)
    }

    /// A request went on to a fallback model.
    package func fallback(from: String, to: String) {
        counter("switchyard_fallbacks_total", help: "Requests that went on to a fallback model.", [("from", from), ("to", to)]).increment()
    }

    /// Passive health ejected a backend after failures.
    package func ejected(backend: String) {
        counter("switchyard_ejections_total", help: "Times passive health ejected a backend.", [("backend", backend)]).increment()
    }

    /// A retry attempt that was made (refused ones are ``retryRefused(reason:)``).
    package func retry(reason: String) {
        counter("switchyard_retries_total", help: "Upstream attempts beyond the first that were made, by reason.", [("reason", reason)])
            .increment()
    }

    /// A retry the request wanted but did not get (`budget_exhausted`).
    package func retryRefused(reason: String) {
        counter("switchyard_retries_refused_total", help: "Retries not made, by why they were refused.", [("reason", reason)]).increment()
    }

    package func inflight(backend: String, _ value: Int) {
        gauge("switchyard_backend_inflight", help: "Requests in flight to a backend.", [("backend", backend)]).set(to: Double(value))
    }

    package func healthy(backend: String, _ value: Bool) {
        gauge("switchyard_backend_healthy", help: "1 when the backend passes active checks and is not ejected.", [("backend", backend)]).set(
            to: value ? 1.0 : 0.0)
    }

    package func outputTokens(model: String, _ count: Int) {
        counter("switchyard_output_tokens_total", help: "Completion tokens served, from the backend's usage.", [("model", model)]).increment(
            by: Int64(count))
    }

    /// Managed replica evidence: load, warmup and time-to-ready of the last start; restarts.
    package func replica(_ status: ReplicaStatus, previousRestarts: Int) {
        let labels = [("backend", status.url)]
        if let v = status.loadSeconds {
            gauge(
                "switchyard_backend_load_seconds", help: "Managed replica: process start until the server answered its health check (last start).",
                labels
            ).set(to: v)
        }
        if let v = status.warmupSeconds {
            gauge("switchyard_backend_warmup_seconds", help: "Managed replica: time spent on warmup requests (last start).", labels).set(to: v)
        }
        if let v = status.readySeconds {
            gauge("switchyard_backend_ready_seconds", help: "Managed replica: process start until ready for traffic (last start).", labels).set(to: v)
        }
        let restarts = counter("switchyard_backend_restarts_total", help: "Managed replica restarts after an exit.", labels)
        if status.restarts > previousRestarts { restarts.increment(by: Int64(status.restarts - previousRestarts)) }
        gauge("switchyard_backend_up", help: "Managed replica: 1 when ready for traffic.", labels)
            .set(to: status.phase == .ready ? 1 : 0)
    }

    package func tenantTokens(tenant: String, kind: String, _ count: Int) {
        counter(
            "switchyard_tenant_tokens_total", help: "Tokens served per tenant, by kind (input, output), from the backend's usage.",
            [("tenant", tenant), ("kind", kind)]
        ).increment(by: Int64(count))
    }

    static let queueWaitBuckets: [Double] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300]

    package func queueWait(lane: String, seconds: Double) {
        queueWaitHistogram(lane: lane).record(seconds)
    }

    private func queueWaitHistogram(lane: String) -> ValueHistogram {
        histogram(
            "switchyard_queue_wait_seconds", help: "Time a request waited in its lane's queue for a slot on a replica.", [("lane", lane)],
            buckets: Self.queueWaitBuckets)
    }

    /// Requests refused or dropped by the scheduler: queue_full, deadline, saturated, queue_timeout.
    package func shed(lane: String, reason: String) {
        counter(
            "switchyard_shed_total", help: "Requests refused at admission or timed out in the queue, by lane and reason.",
            [("lane", lane), ("reason", reason)]
        ).increment()
    }

    package func preempted(lane: String) {
        counter("switchyard_preemptions_total", help: "In-flight requests stopped and requeued for a higher-priority lane.", [("lane", lane)])
            .increment()
    }

    package func slo(lane: String, slo: String, met: Bool) {
        counter(
            "switchyard_slo_total", help: "Requests per lane SLO (ttft, tpot, e2e, max_stall): met or missed; refused and failed requests miss.",
            [("lane", lane), ("slo", slo), ("result", met ? "met" : "missed")]
        ).increment()
    }

    package func queueDepth(model: String, lane: String, _ depth: Int) {
        gauge("switchyard_queue_depth", help: "Requests waiting in a lane of a model pool.", [("model", model), ("lane", lane)]).set(
            to: Double(depth))
    }

    package func backendWindow(backend: String, _ window: Int) {
        gauge("switchyard_backend_window", help: "Current concurrency limit of a replica (adaptive window; 0 = unlimited).", [("backend", backend)])
            .set(to: Double(window))
    }

    /// The capacity in force on a backend, labelled with where it came from; a backend whose
    /// source changes keeps one series (the old one is dropped).
    package func backendCapacity(backend: String, source: String, _ limit: Int) {
        let previous = capacitySources.withLock { sources -> String? in
            defer { sources[backend] = source }
            return sources[backend]
        }
        if let previous, previous != source {
            let key = HandleKey(name: Self.capacityName, labels: [("backend", backend), ("source", previous)])
            if let old = gauges.withLock({ $0.removeValue(forKey: key) }) { registry.unregisterGauge(old) }
        }
        gauge(
            Self.capacityName,
            help:
                "Requests a backend runs at once as Switchyard enforces it (0 = unlimited), by source: config, props, server_info, info, learned, default, pending.",
            [("backend", backend), ("source", source)]
        ).set(to: Double(limit))
    }

    static let capacityName = "switchyard_backend_capacity"
    private let capacitySources = Mutex<[String: String]>([:])

    static let batchBuckets: [Double] = [1, 2, 4, 8, 16, 32, 64, 128]

    package func coalescedBatch(model: String, size: Int) {
        histogram(
            "switchyard_coalesced_batch_size", help: "Inputs per merged upstream embeddings request.", [("model", model)], buckets: Self.batchBuckets
        ).record(Double(size))
    }

    // MARK: Handles

    /// Handles per metric and label values: the registry validates names and labels on every
    /// `make…` call, measurable at tens of thousands of requests per second.
    private struct HandleKey: Hashable {
        let name: String
        /// As the call site wrote them (names are fixed per metric; the values tell handles apart).
        let labels: [(String, String)]

        static func == (a: HandleKey, b: HandleKey) -> Bool {
            a.name == b.name && a.labels.count == b.labels.count && zip(a.labels, b.labels).allSatisfy { $0.1 == $1.1 }
        }

        func hash(into hasher: inout Hasher) {
            hasher.combine(name)
            for label in labels { hasher.combine(label.1) }
        }
    }

    private let counters = Mutex<[HandleKey: Counter]>([:])
    private let gauges = Mutex<[HandleKey: Gauge]>([:])
    private let histograms = Mutex<[HandleKey: ValueHistogram]>([:])

    private func counter(_ name: String, help: String, _ labels: [(String, String)]) -> Counter {
        Self.handle(counters, name, labels) {
            registry.makeCounter(descriptor: .init(metricName: name, unitName: "", helpText: help), labels: labels)
        }
    }

    private func gauge(_ name: String, help: String, _ labels: [(String, String)]) -> Gauge {
        Self.handle(gauges, name, labels) { registry.makeGauge(descriptor: .init(metricName: name, unitName: "", helpText: help), labels: labels) }
    }

    private func histogram(_ name: String, help: String, _ labels: [(String, String)], buckets: [Double]) -> ValueHistogram {
        Self.handle(histograms, name, labels) {
            registry.makeValueHistogram(descriptor: .init(metricName: name, unitName: "", helpText: help), labels: labels, buckets: buckets)
        }
    }

    private static func handle<Handle: Sendable>(
        _ cache: borrowing Mutex<[HandleKey: Handle]>, _ name: String, _ labels: [(String, String)],
        make: () -> Handle
    ) -> Handle {
        let key = HandleKey(name: name, labels: labels)
        return cache.withLock { handles in
            if let handle = handles[key] { return handle }
            let handle = make()
            handles[key] = handle
            return handle
        }
    }

    package func render() -> [UInt8] {
        var buffer: [UInt8] = []
        buffer.reserveCapacity(16 * 1024)
        registry.emit(into: &buffer)
        return buffer
    }
}

/// Why an upstream attempt failed, as the `kind` label of `switchyard_upstream_errors_total`.
package enum UpstreamErrorKind: String, Sendable {
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
