import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import NIOPosix
import SwitchyardCore
import SwitchyardScheduling
import Synchronization

/// Sends a validated request to a backend of its model pool and relays the answer: routing,
/// retries within the retry budget, fallback models, timeouts and the streaming relay.
///
/// Retries happen only while no byte has reached the client, and only for connection-level
/// failures and backend 429/503; a stream that fails after its first byte ends with an SSE error
/// event instead.
package final class Proxy: Sendable {
    let pools: [String: ModelPool]
    let client: UpstreamClient
    let metrics: GatewayMetrics
    /// The configuration in force; a request reads it once (``handle(_:channel:prior:logger:)``).
    let live: LiveConfig
    var config: GatewayConfig { live.current.config }
    let watch: ClientConnectionWatch
    let quotas: Quotas?
    /// Streams in flight per tenant, released when each ends (``log(_:logger:)``).
    let streams = StreamCounts()
    /// Fired when the shutdown grace runs out (see ``Gateway``).
    let shutdownNotice = ShutdownNotice()
    /// Each event loop's keep-alive connections to the backends, used by both paths.
    let connections: UpstreamConnectionRegistry
    private let budget: Mutex<RetryBudget>
    let batchers: [String: EmbeddingBatcher]
    private let origin = ContinuousClock.now

    init(
        live: LiveConfig, pools: [String: ModelPool], client: UpstreamClient, metrics: GatewayMetrics, watch: ClientConnectionWatch,
        quotas: Quotas? = nil
    ) {
        self.live = live
        self.quotas = quotas
        let config = live.current.config
        connections = UpstreamConnectionRegistry(config: config.upstream)
        self.pools = pools
        self.client = client
        self.metrics = metrics
        self.watch = watch
        var batchers: [String: EmbeddingBatcher] = [:]
        for model in config.models where model.batching.maxQueueDelay > .zero {
            batchers[model.name] = EmbeddingBatcher(model: model.name, batching: model.batching)
        }
        self.batchers = batchers
        budget = Mutex(Self.retryBudget(config.retry))
    }

    static func retryBudget(_ retry: RetryConfig) -> RetryBudget {
        RetryBudget(ratio: retry.budgetRatio, window: retry.budgetWindow, minPerWindow: retry.minRetriesPerWindow)
    }

    /// A reload changed the retry settings: the budget starts again under them.
    func retrySettingsChanged(_ retry: RetryConfig) {
        budget.withLock { $0 = Self.retryBudget(retry) }
    }

    /// A failed attempt that another replica may fix.
    struct RetryableFailure: Sendable {
        var reason: String
        var message: String
        var status: Int?
        var retryAfter: Duration?
        /// A connect timeout under load: the request waits in its lane again (not a retry).
        var requeue = false

        /// What the retry plan needs of it.
        var plan: RetryPlan.Failure { RetryPlan.Failure(reason: reason, status: status, retryAfter: retryAfter, requeue: requeue) }
    }

    /// Times one request may go back to its lane after connect timeouts under load.
    static let maxConnectRequeues = 5

    enum AttemptResult: Sendable {
        case done(Response)
        case retry(RetryableFailure)
        case fail(APIError)
        /// The pool took the slot back for a higher lane: queue again, first in line.
        case preempted
    }

    /// Everything the access log and metrics need about one request.
    struct Record: Sendable {
        let start: ContinuousClock.Instant
        let request: ProxyRequestSummary
        var model: String
        var backend: String?
        /// How the last backend was chosen: `affinity` (prefix home) or `least_load`.
        var route: String?
        var attempts = 0
        var preemptions = 0
        /// Times it went back to its lane after a connect timeout under load.
        var connectRequeues = 0
        /// Time spent waiting for a free slot on a replica.
        var queueWait: Duration = .zero
        /// The last attempt's hops: connecting, writing, the backend's first byte.
        var hops = HopTiming()
        var status = 0
        /// When the stream's token-bearing chunks passed.
        var tokens = TokenTiming()
        var promptTokens: Int?
        var completionTokens: Int?
        var error: String?
        /// Where a merged embeddings request leaves its answer.
        var sink: CoalescedSink?
    }

    struct ProxyRequestSummary: Sendable {
        let id: String
        /// The quota charged at admission, reconciled with `usage` when the request ends.
        var quota: QuotaBook.Grant?
        /// Holds one of its tenant's concurrent-stream slots, given back when it ends.
        var streamSlot = false
        var tenant = "anonymous"
        let model: String
        let lane: String
        let stream: Bool
        /// Inputs of a merged embeddings request (its members are logged and counted instead).
        var coalescedInputs: Int?
    }

    /// An attempt the event-loop fast path made before handing the request over (see
    /// ``FastPath``): the retry continues from it, as if this loop had made it.
    struct PriorAttempt: Sendable {
        let start: ContinuousClock.Instant
        let replica: Int
        let backend: String
        let route: String
        let failure: RetryableFailure
        /// The quota the fast path charged: the router continues under it (no second charge).
        var quota: QuotaBook.Grant?
        /// The stream slot the fast path took.
        var streamSlot = false
    }

    /// Takes a concurrent-stream slot for a streaming request of a tenant that has a limit;
    /// the refusal when it has none left.
    func takeStreamSlot(_ request: inout ProxyRequest, countRefusal: Bool = true) -> APIError? {
        guard request.stream, let limit = live.current.streamLimits[request.tenant] else { return nil }
        guard streams.acquire(request.tenant, limit: limit) else {
            if countRefusal { metrics.refused(reason: "streams_per_tenant") }
            return APIError(
                status: 429, message: "Tenant \(request.tenant) already has \(limit) streams open (limits.concurrent_streams); wait for one to end.",
                type: "requests", code: "too_many_streams", retryAfterSeconds: 1)
        }
        request.streamSlot = true
        return nil
    }

    func handle(_ request: ProxyRequest, channel: (any Channel)?, prior: PriorAttempt? = nil, logger: Logger) async -> Response {
        // Merged only where a replica was found to answer a batch as it answers single inputs.
        if request.coalesced == nil, let batcher = batchers[request.model], pools[request.model]?.mayCoalesce == true,
            let input = EmbeddingBatcher.singleInput(request)
        {
            let arrival = ContinuousClock.now
            let (answer, index) = await batcher.submit(request, input: input) { [self] items in await sendCoalesced(items, logger: logger) }
            return answerCoalesced(request, arrival: arrival, answer: answer, index: index, logger: logger)
        }
        let start = prior?.start ?? ContinuousClock.now
        var record = Record(
            start: start,
            request: ProxyRequestSummary(
                id: request.requestID, quota: request.quota, streamSlot: request.streamSlot, tenant: request.tenant, model: request.model,
                lane: request.lane,
                stream: request.stream, coalescedInputs: request.coalesced?.inputs),
            model: request.model)
        record.sink = request.coalesced
        guard let primary = pools[request.model] else {
            return finish(error: .modelNotFound(request.model), record: &record, logger: logger)
        }
        let config = self.config
        let timeouts = primary.config.timeouts ?? config.upstream.timeouts
        let lane = config.lane(named: request.lane) ?? LaneConfig(name: request.lane, priority: 0)
        var deadline = start + timeouts.total
        if let timeout = request.timeout { deadline = min(deadline, start + timeout) }
        if prior == nil { noteArrival() }
        let chain = [request.model] + primary.config.fallback
        var plan = RetryPlan(
            policy: .init(
                maxAttempts: lane.retry.maxAttempts ?? config.retry.maxAttempts, backoff: lane.retry.backoff,
                maxRetryAfter: config.retry.maxRetryAfter, models: chain.count, deadline: deadline,
                maxConnectRequeues: Self.maxConnectRequeues),
            prior: prior.map { ($0.replica, $0.failure.plan) })
        var lastFailure = prior?.failure
        if let prior {
            record.attempts = plan.attempts
            record.backend = prior.backend
            record.route = prior.route
            record.connectRequeues = plan.connectRequeues
        }
        // Scanned once: every attempt and fallback queues with the same estimate.
        let inputTokens = request.estimatedInputTokens, outputTokens = request.maxOutputTokens
        var current = -1
        var affinity: UInt64?
        attempts: while true {
            let modelIndex: Int, excluding: Set<Int>, requeue: Bool
            switch plan.next(now: .now) {
            case .giveUp:
                break attempts
            case .wait(let until):
                try? await Task.sleep(until: until, clock: .continuous)
                continue attempts
            case .acquire(let model, let without, let back):
                (modelIndex, excluding, requeue) = (model, without, back)
            }
            guard let pool = pools[chain[modelIndex]] else {
                plan.skipModel()
                continue
            }
            if modelIndex != current {
                if current >= 0 {
                    logger.info(
                        "falling back", metadata: ["request_id": "\(request.requestID)", "from": "\(chain[current])", "to": "\(chain[modelIndex])"])
                    metrics.fallback(from: chain[current], to: chain[modelIndex])
                }
                current = modelIndex
                record.model = chain[modelIndex]
                affinity = pool.config.routing.policy == .prefixAffinity ? request.affinityKey(prefixChars: pool.config.routing.prefixChars) : nil
            }
            var ticket = ModelPool.Ticket(
                lane: request.lane, tenant: request.tenant, inputTokens: inputTokens, maxOutputTokens: outputTokens,
                startBy: startBy(lane: lane, pool: pool, arrival: start, request: request), giveUpAt: deadline,
                affinityKey: affinity)
            // A merged embeddings request goes only where batching does not change answers.
            ticket.excluding = request.coalesced == nil ? excluding : excluding.union(pool.batchingExcluded())
            ticket.preemptions = plan.preemptions
            ticket.requeue = requeue
            let queued = ContinuousClock.now
            let lease: ModelPool.Lease
            do {
                lease = try await pool.acquire(ticket)
            } catch {
                record.queueWait += ContinuousClock.now - queued
                switch error {
                case .rejected(let error, let reason):
                    metrics.shed(lane: lane.name, reason: reason)
                    return finish(error: error, record: &record, logger: logger)
                case .cancelled:
                    return finish(
                        error: APIError(status: 499, message: "Client closed the connection.", type: "client_closed", code: "client_closed"),
                        record: &record, logger: logger)
                case .shuttingDown:
                    return finish(error: .serverShutdown, record: &record, logger: logger)
                case .queueTimeout:
                    metrics.shed(lane: lane.name, reason: "queue_timeout")
                    plan.refused(.queueTimeout, now: .now)
                case .noReplica:
                    plan.refused(.noReplica, now: .now)
                }
                continue
            }
            record.queueWait += ContinuousClock.now - queued
            metrics.queueWait(lane: lane.name, seconds: (ContinuousClock.now - queued).seconds)
            if let reason = plan.budgetReason, !acquireRetry(reason: reason, requestID: request.requestID, logger: logger) {
                pool.release(lease, outcome: .neutral)
                plan.budgetDenied()
                continue
            }
            plan.leased(replica: lease.index)
            record.attempts = plan.attempts
            record.backend = lease.backend.id
            record.route = lease.viaAffinity ? "affinity" : "least_load"
            switch await attempt(
                request, pool: pool, lease: lease, timeouts: timeouts, deadline: deadline, channel: channel, record: record, logger: logger)
            {
            case .done(let response):
                return response
            case .retry(let failure):
                lastFailure = failure
                plan.failed(failure.plan, replica: lease.index)
                record.connectRequeues = plan.connectRequeues
            case .fail(let error):
                return finish(error: error, record: &record, logger: logger)
            case .preempted:
                plan.preempted(replica: lease.index)
                record.preemptions = plan.preemptions
                metrics.preempted(lane: lane.name)
                logger.info(
                    "preempted: requeued first in its lane",
                    metadata: [
                        "request_id": "\(request.requestID)", "backend": "\(lease.backend.id)", "lane": "\(lane.name)",
                        "preemptions": "\(record.preemptions)",
                    ])
            }
        }
        let error: APIError
        switch plan.outcome {
        case .queueTimeout:
            error = .unavailable(
                "The request waited in the \(lane.name) queue of '\(record.model)' past its deadline: every replica stayed at its concurrency limit.",
                code: "queue_timeout")
        case .overloaded(let status, let retryAfter):
            let seconds = retryAfter.map { max(1, Int($0.seconds.rounded(.up))) } ?? 1
            error = APIError(
                status: status, message: "Backends of '\(record.model)' are overloaded: \(lastFailure?.message ?? "")",
                type: "server_error", code: status == 429 ? "rate_limit_exceeded" : "backend_overloaded", retryAfterSeconds: seconds)
        case .allFailed:
            error = .upstream("All attempts failed; last error: \(lastFailure?.message ?? "")")
        case .noBackend:
            error = .unavailable("No healthy backend for model '\(request.model)'.", code: "no_healthy_backend")
        }
        return finish(error: error, record: &record, logger: logger)
    }

    /// Latest start of a request: the lane's queue timeout (else the model's), its TTFT SLO, and
    /// the client's own `x-switchyard-timeout-ms`, whichever comes first.
    func startBy(lane: LaneConfig, pool: ModelPool, arrival: ContinuousClock.Instant, request: ProxyRequest) -> ContinuousClock.Instant {
        arrival + lane.startWithin(poolQueueTimeout: pool.config.queueTimeout, requestTimeout: request.timeout)
    }

    /// Counts a request for the retry budget (retries may add at most its ratio of requests).
    func noteArrival() {
        budget.withLock { $0.recordRequest(now: ContinuousClock.now - origin) }
    }

    private func acquireRetry(reason: String, requestID: String, logger: Logger) -> Bool {
        let granted = budget.withLock { $0.tryAcquireRetry(now: ContinuousClock.now - origin) }
        if granted {
            metrics.retry(reason: reason)
        } else {
            logger.warning("retry budget exhausted; not retrying", metadata: ["request_id": "\(requestID)", "reason": "\(reason)"])
            metrics.retryRefused(reason: "budget_exhausted")
        }
        return granted
    }

    /// One attempt on the lease's replica, served on the client connection's event loop by the
    /// same ``ExchangeDriver`` as the fast path.
    private func attempt(
        _ request: ProxyRequest, pool: ModelPool, lease: ModelPool.Lease, timeouts: TimeoutConfig,
        deadline: ContinuousClock.Instant, channel: (any Channel)?, record: Record, logger: Logger
    ) async -> AttemptResult {
        let loop = channel?.eventLoop ?? MultiThreadedEventLoopGroup.singleton.any()
        let result = loop.makePromise(of: AttemptResult.self)
        loop.execute { [self] in
            let sink = RouterSink(loop: loop, result: result)
            let driver = ExchangeDriver(
                proxy: self, sink: sink, connections: connections.connections(for: loop), request: request, body: nil, pool: pool,
                lease: lease, timeouts: timeouts, deadline: deadline, record: record, logger: logger)
            let bound = NIOLoopBound(driver, eventLoop: loop)
            let subscription = channel.map { watch.subscribe($0) { loop.execute { bound.value.clientGone() } } }
            lease.preemption?.subscribe { loop.execute { bound.value.preempted() } }
            sink.start(driver) {
                subscription?.cancel()
                lease.preemption?.subscribe(nil)
            }
        }
        do {
            return try await result.futureResult.get()
        } catch {
            return .fail(.upstream("The attempt ended without an answer: \(error)"))
        }
    }

    static let maxResponseBytes = 64 * 1024 * 1024
}
