import HTTPTypes
import Logging
import NIOCore
import NIOHTTP1
import SwitchyardCore

/// One request served by the fast path, from its lease to the last byte to the client, all on
/// the client connection's event loop. The rules are the router path's (``Proxy``), shared
/// through its helpers: the same timeouts, relay, accounting, access log and errors.
final class FastExchange: UpstreamDelegate {
    private enum Phase {
        case connecting
        case awaitingHead
        case whole
        case stream
        case finished
    }

    let fastPath: FastPath
    let handler: FastPathHandler
    /// The client's request as received (with its request id), kept for a hand-back.
    let head: HTTPRequestHead
    let body: ByteBuffer
    private let request: ProxyRequest
    private let pool: ModelPool
    private let lease: ModelPool.Lease
    private let timeouts: TimeoutConfig
    private let closeAfter: Bool
    private var record: Proxy.Record
    private var proxy: Proxy { fastPath.proxy }
    private var logger: Logger { fastPath.gateway.logger }

    private var phase = Phase.connecting
    private var connection: UpstreamConnection?
    private var reused = false
    private var resent = false
    private var paused = false
    private var upstreamBody = ByteBuffer()
    private var sent = ContinuousClock.now
    // The answer as it arrives.
    private var status = 0
    private var contentType: String?
    private var retryAfter: String?
    private var keepAlive = true
    private var collected = ByteBuffer()
    private var relay: StreamRelay
    private var committed = false
    private var tokens = Proxy.StreamTokens()
    // Timeouts, checked by the connection's timer (``FastPathHandler/checkTimeouts(by:)``).
    private let deadline: NIODeadline
    private var lastActivity = NIODeadline.now()
    private var idleLimit: TimeAmount

    init(
        fastPath: FastPath, handler: FastPathHandler, head: HTTPRequestHead, body: ByteBuffer, request: ProxyRequest, pool: ModelPool,
        lease: ModelPool.Lease, timeouts: TimeoutConfig, start: ContinuousClock.Instant, deadline: ContinuousClock.Instant, closeAfter: Bool
    ) {
        self.fastPath = fastPath
        self.handler = handler
        self.head = head
        self.body = body
        self.request = request
        self.pool = pool
        self.lease = lease
        self.timeouts = timeouts
        self.closeAfter = closeAfter
        self.deadline = .now() + Self.amount(deadline - .now)
        idleLimit = Self.amount(timeouts.firstByte)
        relay = StreamRelay(publicModel: request.model, forwardUsage: request.clientWantsUsage)
        record = Proxy.Record(
            start: start,
            request: Proxy.ProxyRequestSummary(
                id: request.requestID, tenant: request.tenant, model: request.model,
                lane: request.lane, stream: request.stream),
            model: request.model)
        record.attempts = 1
        record.backend = lease.backend.id
        record.route = lease.viaAffinity ? "affinity" : "least_load"
    }

    static func amount(_ duration: Duration) -> TimeAmount {
        .nanoseconds(Int64(max(0, duration.seconds) * 1e9))
    }

    // MARK: Sending

    func begin() {
        proxy.metrics.inflight(backend: lease.backend.id, lease.inflight)
        // A whole answer's request goes as the client sent it but for the model's value; a stream
        // also asks for usage (rebuilt, as on the router path).
        let model = lease.backend.upstreamModel
        upstreamBody = (request.stream ? nil : WholeAnswer.settingModel(of: body, to: model)) ?? ByteBuffer(bytes: request.upstreamBody(model: model))
        sent = .now
        handler.checkTimeouts(by: nextCheck)
        if let pooled = handler.connections.take(lease.backend) {
            reused = true
            send(on: pooled)
        } else {
            connect()
        }
    }

    private func connect() {
        phase = .connecting
        handler.connections.connect(lease.backend) { [self] result in
            switch result {
            case .success(let connection):
                guard case .connecting = phase else {
                    connection.abandon()
                    return
                }
                send(on: connection)
            case .failure(let error):
                guard case .connecting = phase else { return }
                attemptFailed(error)
            }
        }
    }

    private func send(on connection: UpstreamConnection) {
        self.connection = connection
        connection.handler.delegate = self
        phase = .awaitingHead
        let url = lease.backend.url
        var headers = HTTPHeaders()
        headers.add(name: "host", value: lease.backend.hostHeader)
        headers.add(name: "content-type", value: "application/json")
        headers.add(name: "accept", value: request.stream ? "text/event-stream" : "application/json")
        headers.add(name: "x-request-id", value: request.requestID)
        headers.add(name: "content-length", value: String(upstreamBody.readableBytes))
        let channel = connection.channel
        channel.write(
            HTTPClientRequestPart.head(
                HTTPRequestHead(
                    version: .http1_1, method: .POST, uri: url.path + request.endpoint.rawValue,
                    headers: headers)), promise: nil)
        channel.write(HTTPClientRequestPart.body(.byteBuffer(upstreamBody)), promise: nil)
        channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
    }

    // MARK: The backend's answer

    func upstreamReceived(_ part: HTTPClientResponsePart) {
        lastActivity = .now()
        switch (phase, part) {
        case (.awaitingHead, .head(let response)):
            status = Int(response.status.code)
            keepAlive = response.isKeepAlive
            contentType = response.headers.first(name: "content-type")
            if request.stream, status == 200, contentType?.lowercased().hasPrefix("text/event-stream") == true {
                phase = .stream
            } else {
                phase = .whole
                retryAfter = response.headers.first(name: "retry-after")
                setIdleLimit(timeouts.idle)
            }
        case (.whole, .body(let chunk)):
            guard collected.readableBytes + chunk.readableBytes <= Proxy.maxResponseBytes else {
                releaseConnection(reuse: false)
                proxy.metrics.upstreamError(backend: lease.backend.id, kind: .reset)
                proxy.release(pool, lease, .failure)
                fail(.upstream("The backend \(lease.backend.id) sent a response larger than \(Proxy.maxResponseBytes) bytes."))
                return
            }
            if collected.readableBytes == 0 { collected = chunk } else { collected.writeImmutableBuffer(chunk) }
        case (.whole, .end):
            finishWhole()
        case (.stream, .body(let chunk)):
            let (out, sawToken) = chunk.withUnsafeReadableBytes { relay.process($0) }
            if sawToken { noteToken() }
            if !out.isEmpty { emit(out) }
            if relay.stop != nil {
                // Malformed or an in-band error: nothing more is read.
                releaseConnection(reuse: false)
                committed ? endStream(stop: nil, readError: nil) : noFirstEvent(readError: nil)
            }
        case (.stream, .end):
            releaseConnection(reuse: keepAlive)
            let out = relay.finish()
            if !out.isEmpty { emit(out) }
            committed ? endStream(stop: nil, readError: nil) : noFirstEvent(readError: nil)
        default:
            break
        }
    }

    func upstreamReadComplete() {
        if committed { handler.flush() }
    }

    func upstreamClosed(_ error: (any Error)?) {
        connection = nil
        switch phase {
        case .connecting, .awaitingHead:
            if reused, !resent {
                // A pooled keep-alive connection the server had closed: the request never reached
                // it. Resend once on a fresh connection, as curl does; not a backend failure.
                resent = true
                reused = false
                proxy.metrics.retry(reason: "stale_connection")
                connect()
                return
            }
            attemptFailed(error)
        case .whole:
            proxy.metrics.upstreamError(backend: lease.backend.id, kind: .reset)
            proxy.release(pool, lease, .failure)
            fail(.upstream("The backend \(lease.backend.id) closed the connection mid-response: \(error.map { "\($0)" } ?? "connection closed")"))
        case .stream:
            let readError = error ?? ChannelError.eof
            committed ? endStream(stop: nil, readError: readError) : noFirstEvent(readError: readError)
        case .finished:
            break
        }
    }

    private func finishWhole() {
        releaseConnection(reuse: keepAlive)
        if status == 429 || status == 503 {
            handOff(proxy.overloaded(status: status, retryAfter: retryAfter, body: collected, pool: pool, lease: lease))
            return
        }
        let (out, record) = proxy.settleWhole(
            request, status: status, contentType: contentType, buffer: collected, pool: pool, lease: lease,
            record: record, logger: logger)
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: contentType ?? "application/json")
        proxy.addGatewayHeaders(&headers, record: record)
        answer(HTTPResponseStatus(statusCode: status), headers, out)
    }

    private func noteToken() {
        let now = ContinuousClock.now
        if tokens.first == nil { tokens.first = now }
        if let last = tokens.last { tokens.maxGap = max(tokens.maxGap ?? .zero, now - last) }
        tokens.last = now
    }

    /// Sends stream bytes; the first ones commit the response (no retry after this).
    private func emit(_ out: [UInt8]) {
        if !committed {
            committed = true
            setIdleLimit(timeouts.idle)
            record.status = 200
            var headers = HTTPHeaders()
            headers.add(name: "content-type", value: "text/event-stream")
            headers.add(name: "cache-control", value: "no-cache")
            headers.add(name: "server", value: "switchyard")
            proxy.addGatewayHeaders(&headers, record: record)
            handler.send(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers)))
        }
        handler.send(.body(.byteBuffer(ByteBuffer(bytes: out))))
    }

    /// The stream ended before any event reached the client: still retryable, unless malformed.
    private func noFirstEvent(readError: (any Error)?) {
        let kind: UpstreamErrorKind = relay.stop == nil ? .reset : .malformed
        proxy.metrics.upstreamError(backend: lease.backend.id, kind: kind)
        proxy.release(pool, lease, .failure)
        if case .malformed(let message) = relay.stop {
            fail(.upstream("The backend \(lease.backend.id) sent a malformed stream: \(message)"))
            return
        }
        handOff(
            Proxy.RetryableFailure(
                reason: "reset", message: "\(lease.backend.id) closed the stream before the first event: \(readError.map { "\($0)" } ?? "no data")"))
    }

    private func endStream(stop: StopReason?, readError: (any Error)?) {
        let ending = proxy.finishStream(
            stop: stop, relay: relay, readError: readError, clientGone: stop == .clientClosed, tokens: tokens,
            sent: sent, timeouts: timeouts, pool: pool, lease: lease, record: record, logger: logger)
        if stop != .clientClosed {
            if let ending { handler.send(.body(.byteBuffer(ByteBuffer(bytes: ending)))) }
            handler.send(.end(nil), flush: true)
        }
        complete()
    }

    // MARK: Failures, timeouts, the client leaving

    private func attemptFailed(_ error: (any Error)?) {
        handOff(proxy.failedBeforeResponse(error, pool: pool, lease: lease, logger: logger))
    }

    /// Nothing reached the client and another replica may do better: the router continues.
    private func handOff(_ failure: Proxy.RetryableFailure) {
        logger.warning(
            "upstream attempt failed",
            metadata: [
                "request_id": "\(request.requestID)", "backend": "\(lease.backend.id)",
                "reason": "\(failure.reason)", "error": "\(failure.message)",
            ])
        finishPhase()
        fastPath.handBack(
            self,
            prior: Proxy.PriorAttempt(
                start: record.start, replica: lease.index, backend: lease.backend.id,
                route: record.route ?? "least_load", failure: failure))
    }

    /// Ends the request with an error response (nothing was sent yet).
    private func fail(_ error: APIError) {
        let (head, body) = GatewayResponses.errorParts(error, headers: proxy.settle(error: error, record: &record, logger: logger))
        answer(HTTPResponseStatus(statusCode: head.status.code), HTTPHeaders(head.headerFields), body)
    }

    /// `headers` hold neither a length nor a server name yet.
    private func answer(_ status: HTTPResponseStatus, _ headers: HTTPHeaders, _ body: ByteBuffer) {
        var headers = headers
        headers.add(name: "content-length", value: String(body.readableBytes))
        headers.add(name: "server", value: "switchyard")
        handler.send(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers)))
        handler.send(.body(.byteBuffer(body)))
        handler.send(.end(nil), flush: true)
        complete()
    }

    private func stop(_ reason: StopReason) {
        releaseConnection(reuse: false)
        if committed {
            endStream(stop: reason, readError: nil)
        } else if case .fail(let error) = proxy.stopped(reason, pool: pool, lease: lease) {
            if reason == .clientClosed {
                _ = proxy.settle(error: error, record: &record, logger: logger)
                complete()
            } else {
                fail(error)
            }
        }
    }

    func clientClosed() {
        if case .finished = phase { return }
        stop(.clientClosed)
    }

    func clientWritable(_ writable: Bool) {
        guard let connection, paused == writable else { return }
        paused = !writable
        if paused { proxy.metrics.clientBackpressure() } else { lastActivity = .now() }
        connection.channel.setOption(ChannelOptions.autoRead, value: writable).whenFailure { _ in }
    }

    /// From the first-byte limit to the idle limit: the timer moves up if that is sooner.
    private func setIdleLimit(_ limit: Duration) {
        idleLimit = Self.amount(limit)
        handler.checkTimeouts(by: nextCheck)
    }

    /// When a timeout may next have passed.
    private var nextCheck: NIODeadline {
        min((paused ? .now() : lastActivity) + idleLimit, deadline)
    }

    /// The connection's timer fired while this exchange is current: ends it if a limit passed,
    /// else says when to look again.
    func timerFired() -> NIODeadline? {
        if case .finished = phase { return nil }
        let now = NIODeadline.now()
        if now >= deadline {
            stop(.totalTimeout)
        } else if now >= lastActivity + idleLimit, !paused {
            // (While paused for a slow client the backend is not the one idling.)
            let waitingForFirst = phase == .connecting || phase == .awaitingHead || (phase == .stream && !committed)
            stop(waitingForFirst ? .firstByteTimeout : .idleTimeout)
        } else {
            return nextCheck
        }
        return nil
    }

    private func releaseConnection(reuse: Bool) {
        guard let connection else { return }
        self.connection = nil
        if reuse {
            if paused {
                paused = false
                connection.channel.setOption(ChannelOptions.autoRead, value: true).whenFailure { _ in }
            }
            handler.connections.giveBack(connection)
        } else {
            connection.abandon()
        }
    }

    private func finishPhase() {
        phase = .finished
        releaseConnection(reuse: false)
    }

    private func complete() {
        finishPhase()
        handler.exchangeDone(close: closeAfter)
    }
}
