import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import SwitchyardCore
import SwitchyardScheduling

/// How an attempt ends, for both paths (``ExchangeDriver`` carries out every attempt): the lease settled, metrics, the access log, and what
/// the client gets.
extension Proxy {
    /// A backend's 429/503: cool the replica down for its Retry-After and try another.
    func overloaded(status: Int, retryAfter header: String?, body: ByteBuffer, pool: ModelPool, lease: ModelPool.Lease) -> RetryableFailure {
        let retryAfter = header.flatMap { Int($0) }.map { Duration.seconds($0) }
        metrics.upstreamError(backend: lease.backend.id, kind: status == 429 ? .status429 : .status503)
        pool.coolDown(lease.index, for: retryAfter ?? .seconds(1))
        pool.observe(lease, overloaded: true)
        release(pool, lease, status == 503 ? .failure : .neutral)
        return RetryableFailure(
            reason: "status_\(status)", message: "\(lease.backend.id) answered \(status): \(String(buffer: body).prefix(200))",
            status: status, retryAfter: retryAfter)
    }

    /// An attempt that failed before any response came (connect error, reset): counted and its
    /// lease settled. A connect timeout while the backend is busy with our other requests means
    /// it cannot take connections at this rate: its learned window shrinks, and the request waits
    /// in its lane again (``RetryableFailure/requeue``) instead of failing.
    func failedBeforeResponse(_ error: (any Error)?, pool: ModelPool, lease: ModelPool.Lease, logger: Logger) -> RetryableFailure {
        let kind = error.map(UpstreamFailure.kind(of:)) ?? .reset
        metrics.upstreamError(backend: lease.backend.id, kind: kind)
        var requeue = false
        if let error, UpstreamFailure.isConnectTimeout(error) {
            let (again, change) = pool.connectTimedOut(lease)
            requeue = again
            if let change { pool.report(change, backend: lease.backend.id, logger: logger) }
        }
        release(pool, lease, requeue ? .neutral : .failure)
        return RetryableFailure(
            reason: kind.rawValue, message: "\(lease.backend.id): \(error.map { "\($0)" } ?? "connection closed before the response")",
            requeue: requeue)
    }

    func stopped(_ reason: StopReason, pool: ModelPool, lease: ModelPool.Lease) -> AttemptResult {
        switch reason {
        case .preempted:
            pool.noteCancelled(lease.index)
            release(pool, lease, .neutral, preempted: true)
            return .preempted
        case .clientClosed:
            pool.noteCancelled(lease.index)
            release(pool, lease, .neutral)
            return .fail(APIError(status: 499, message: "Client closed the connection.", type: "client_closed", code: "client_closed"))
        case .shutdown:
            release(pool, lease, .neutral)
            return .fail(.serverShutdown)
        case .firstByteTimeout, .idleTimeout, .totalTimeout:
            let kind: UpstreamErrorKind = reason == .totalTimeout ? .totalTimeout : (reason == .idleTimeout ? .idleTimeout : .firstByteTimeout)
            metrics.upstreamError(backend: lease.backend.id, kind: kind)
            release(pool, lease, .failure)
            let what = reason == .totalTimeout ? "the total timeout" : (reason == .idleTimeout ? "the idle timeout" : "the first-byte timeout")
            return .fail(.timeout("The backend \(lease.backend.id) did not answer within \(what)."))
        }
    }

    /// `preempted`: the request goes back to the queue, so its fairness charge is not settled here.
    func release(_ pool: ModelPool, _ lease: ModelPool.Lease, _ outcome: AttemptOutcome, usage: ModelPool.Usage? = nil, preempted: Bool = false) {
        let released = pool.release(lease, outcome: outcome, usage: usage, preempted: preempted)
        if released.ejected {
            metrics.healthy(backend: lease.backend.id, false)
            metrics.ejected(backend: lease.backend.id)
        }
        metrics.inflight(backend: lease.backend.id, released.inflight)
    }

    /// Non-streaming answers (and error statuses): restore the model name, settle the lease, log;
    /// returns the response head and body for the client.
    func answerWhole(
        _ request: ProxyRequest, status: Int, contentType: String?, buffer: ByteBuffer, pool: ModelPool, lease: ModelPool.Lease,
        record: Record, logger: Logger
    ) -> (HTTPResponse, ByteBuffer) {
        let (out, record) = settleWhole(
            request, status: status, contentType: contentType, buffer: buffer, pool: pool, lease: lease,
            record: record, logger: logger)
        var headers = HTTPFields()
        headers[.contentType] = contentType ?? "application/json"
        addGatewayHeaders(&headers, record: record)
        return (HTTPResponse(status: .init(code: status), headerFields: headers), out)
    }

    /// ``answerWhole(_:status:contentType:buffer:pool:lease:record:logger:)`` without the response
    /// head, which the caller builds in its own header type: the body for the client and the
    /// final record (for ``addGatewayHeaders(_:record:)``).
    func settleWhole(
        _ request: ProxyRequest, status: Int, contentType: String?, buffer: ByteBuffer, pool: ModelPool, lease: ModelPool.Lease,
        record: Record, logger: Logger
    ) -> (ByteBuffer, Record) {
        var record = record
        record.status = status
        var out = buffer
        if status >= 200, status < 300 {
            let restored = WholeAnswer.restore(buffer, publicModel: request.model)
            out = restored.body
            record.promptTokens = restored.promptTokens
            record.completionTokens = restored.completionTokens
        }
        if status >= 500 {
            metrics.upstreamError(backend: lease.backend.id, kind: .status5xx)
        }
        release(
            pool, lease, status >= 500 ? .failure : .success,
            usage: ModelPool.Usage(promptTokens: record.promptTokens, completionTokens: record.completionTokens))
        request.coalesced?.store { a in
            a.status = status
            a.body = out
            a.contentType = contentType ?? "application/json"
            a.backend = record.backend
            a.attempts = record.attempts
            a.queueWait = record.queueWait
            a.promptTokens = record.promptTokens
        }
        log(record, logger: logger)
        return (out, record)
    }

    /// The gateway's response headers (request id, backend, attempts, lane, preemptions), into
    /// Hummingbird's fields or, on the fast path, NIO's HTTP/1 headers.
    func addGatewayHeaders(_ headers: inout some GatewayHeaderFields, record: Record) {
        headers.setGatewayField(GatewayHeaders.requestID, record.request.id)
        if let backend = record.backend { headers.setGatewayField(GatewayHeaders.backend, backend) }
        headers.setGatewayField(GatewayHeaders.attempts, String(record.attempts))
        if record.request.lane != "-" { headers.setGatewayField(GatewayHeaders.servedLane, record.request.lane) }
        if record.preemptions > 0 { headers.setGatewayField(GatewayHeaders.preemptions, String(record.preemptions)) }
        headers.setGatewayField(GatewayHeaders.serverTiming, record.hops.parts(start: record.start, queue: record.queueWait, now: .now).serverTiming)
    }

    /// The end of a committed stream: how it ended, the lease settled, metrics and the access log.
    /// Returns the SSE error event for the client when the end is not a clean `[DONE]` (never a
    /// silent truncation); nil when the stream ended cleanly or the client is gone.
    func finishStream(
        stop: StopReason?, relay: StreamRelay, readError: (any Error)?, clientGone: Bool, tokens: TokenTiming, sent: ContinuousClock.Instant,
        timeouts: TimeoutConfig, pool: ModelPool, lease: ModelPool.Lease, record: Record, logger: Logger
    ) -> [UInt8]? {
        var record = record
        var clientGone = clientGone
        var outcome: AttemptOutcome = .success
        var endError: APIError?
        switch stop {
        case .some(.clientClosed), .some(.preempted):
            // Preemption is refused once bytes went out, so only a client leaving ends here.
            clientGone = true
            outcome = .neutral
        case .some(.idleTimeout), .some(.firstByteTimeout):
            endError = .timeout("The backend stopped sending for longer than the idle timeout (\(timeouts.idle.formatted)).")
            metrics.upstreamError(backend: lease.backend.id, kind: .idleTimeout)
            outcome = .failure
        case .some(.totalTimeout):
            endError = .timeout("The request exceeded the total timeout (\(timeouts.total.formatted)).")
            metrics.upstreamError(backend: lease.backend.id, kind: .totalTimeout)
            outcome = .failure
        case .some(.shutdown):
            // Never a silent cut: the client reads an error event, the log says shutdown.
            endError = .serverShutdown
            record.status = APIError.serverShutdown.status
            outcome = .neutral
        case .none:
            if case .malformed(let message) = relay.stop {
                endError = .upstream("The backend sent a malformed stream: \(message)")
                metrics.upstreamError(backend: lease.backend.id, kind: .malformed)
                outcome = .failure
            } else if case .inBandError(let message) = relay.stop {
                record.error = message
                metrics.upstreamError(backend: lease.backend.id, kind: .inBandError)
            } else if let readError {
                endError = .upstream("The connection to the backend was lost mid-stream: \(readError)", code: "upstream_reset")
                metrics.upstreamError(backend: lease.backend.id, kind: .reset)
                outcome = .failure
            } else if !relay.sawDone {
                endError = .upstream("The backend ended the stream without [DONE].", code: "upstream_truncated")
                outcome = .failure
            }
        }
        if let endError { record.error = endError.code.map { "\($0): \(endError.message)" } ?? endError.message }
        if clientGone { record.status = 499 }
        record.tokens = tokens
        pool.observe(
            lease, ttft: tokens.first.map { $0 - sent }, tpot: tokens.tpot(completionTokens: relay.completionTokens), promptTokens: relay.promptTokens
        )
        release(pool, lease, outcome, usage: ModelPool.Usage(promptTokens: relay.promptTokens, completionTokens: relay.completionTokens))
        record.promptTokens = relay.promptTokens
        record.completionTokens = relay.completionTokens
        log(record, logger: logger)
        guard let endError, !clientGone else { return nil }
        return StreamRelay.errorEvent(endError)
    }

    /// A request refused before it was parsed (bad JSON, size, content type): still one access-log
    /// line and one `switchyard_requests_total` count, under model "-".
    func reject(_ error: APIError, requestID: String, logger: Logger) -> Response {
        var record = Record(start: .now, request: ProxyRequestSummary(id: requestID, model: "-", lane: "-", stream: false), model: "-")
        return finish(error: error, record: &record, logger: logger)
    }

    func finish(error: APIError, record: inout Record, logger: Logger) -> Response {
        GatewayResponses.error(error, headers: settle(error: error, record: &record, logger: logger))
    }

    /// Counts and logs a request that ends with `error`; returns the gateway's response headers.
    func settle(error: APIError, record: inout Record, logger: Logger) -> HTTPFields {
        record.status = error.status
        record.error = error.message
        record.sink?.store { [record] a in
            a.status = error.status
            a.body = ByteBuffer(bytes: error.json.serialized())
            a.backend = record.backend
            a.attempts = record.attempts
            a.queueWait = record.queueWait
        }
        log(record, logger: logger)
        var headers = HTTPFields()
        addGatewayHeaders(&headers, record: record)
        return headers
    }
}
