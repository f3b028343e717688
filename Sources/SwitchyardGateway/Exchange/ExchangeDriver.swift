import HTTPTypes
import Logging
import NIOCore
import NIOHTTP1
import SwitchyardCore
import SwitchyardScheduling

/// Carries out one ``UpstreamExchange`` on one event loop, for both paths: it writes the request
/// on an upstream connection of that loop (``UpstreamConnections``), feeds the machine what the
/// connection, the client and the timer report, and settles each ending the one way
/// `Proxy+Endings.swift` defines, handing the client's part to its ``ExchangeSink``.
final class ExchangeDriver: UpstreamDelegate {
    private var machine: UpstreamExchange
    private let sink: any ExchangeSink
    private let connections: UpstreamConnections
    private let proxy: Proxy
    private let request: ProxyRequest
    private let upstreamBody: ByteBuffer
    private let timeouts: TimeoutConfig
    private let logger: Logger
    let pool: ModelPool
    let lease: ModelPool.Lease
    private(set) var record: Proxy.Record
    private var connection: UpstreamConnection?
    /// Reading from the backend is paused for a slow client.
    private var readingPaused = false
    /// Its subscription to the gateway's ``ShutdownNotice`` while it runs.
    private var shutdownSubscription: UInt64?

    /// `body`: the client's body when the request came in whole (reused with only the model
    /// replaced); nil to serialize the parsed request.
    init(
        proxy: Proxy, sink: any ExchangeSink, connections: UpstreamConnections, request: ProxyRequest, body: ByteBuffer?, pool: ModelPool,
        lease: ModelPool.Lease, timeouts: TimeoutConfig, deadline: ContinuousClock.Instant, record: Proxy.Record, logger: Logger
    ) {
        self.proxy = proxy
        self.sink = sink
        self.connections = connections
        self.request = request
        self.pool = pool
        self.lease = lease
        self.timeouts = timeouts
        self.record = record
        self.logger = logger
        let model = lease.backend.upstreamModel
        // A whole answer's request goes as the client sent it but for the model's value; a stream
        // also asks for usage (rebuilt).
        upstreamBody =
            (request.stream ? nil : body.flatMap { WholeAnswer.settingModel(of: $0, to: model) })
            ?? ByteBuffer(bytes: request.upstreamBody(model: model))
        machine = UpstreamExchange(
            limits: .init(firstByte: timeouts.firstByte, idle: timeouts.idle, deadline: deadline, maxResponseBytes: Proxy.maxResponseBytes),
            stream: request.stream, relay: StreamRelay(publicModel: request.model, forwardUsage: request.clientWantsUsage), now: .now)
    }

    var isFinished: Bool { machine.phase == .finished }

    func begin() {
        proxy.metrics.inflight(backend: lease.backend.id, lease.inflight)
        let loop = connections.eventLoop
        let bound = NIOLoopBound(self, eventLoop: loop)
        shutdownSubscription = proxy.shutdownNotice.subscribe { loop.execute { bound.value.shutdown() } }
        guard shutdownSubscription != nil else { return perform(machine.shutdown()) }
        perform([machine.begin()])
        armTimer()
    }

    // MARK: Events

    func upstreamReceived(_ part: HTTPClientResponsePart) {
        switch part {
        case .head(let head):
            record.hops.firstByteArrived(at: .now)
            machine.head(
                status: Int(head.status.code), contentType: head.headers.first(name: "content-type"),
                retryAfter: head.headers.first(name: "retry-after"), keepAlive: head.isKeepAlive, now: .now)
            armTimer()
        case .body(let chunk):
            perform(machine.body(chunk, now: .now))
        case .end:
            perform(machine.end(now: .now))
        }
    }

    func upstreamReadComplete() {
        if machine.committed { sink.flush() }
    }

    func upstreamClosed(_ error: (any Error)?) {
        connection = nil
        perform(machine.closed(error, now: .now))
        armTimer()
    }

    func clientGone() {
        perform(machine.clientGone())
    }

    func preempted() {
        perform(machine.preempted())
    }

    /// The shutdown grace ran out.
    func shutdown() {
        perform(machine.shutdown())
    }

    func clientWritable(_ writable: Bool) {
        guard connection != nil else { return }
        perform(machine.clientWritable(writable, now: .now))
        armTimer()
    }

    /// The sink's timer fired: ends the attempt if a limit passed; returns when to look again.
    func timerFired() -> NIODeadline? {
        perform(machine.timer(now: .now))
        return nextDeadline
    }

    private var nextDeadline: NIODeadline? {
        machine.nextDeadline.map { .now() + .nanoseconds(Int64(max(0, ($0 - .now).seconds) * 1e9)) }
    }

    private func armTimer() {
        if let next = nextDeadline { sink.armTimer(by: next) }
    }

    // MARK: Actions

    private func perform(_ actions: [UpstreamExchange.Action]) {
        for action in actions {
            switch action {
            case .send(let fresh):
                send(fresh: fresh)
            case .commit:
                // From here bytes go to the client: a preemption that came first wins.
                if let preemption = lease.preemption, !preemption.commit() {
                    perform(machine.commitRefused())
                    return
                }
                record.status = 200
                var headers = HTTPHeaders()
                headers.add(name: "content-type", value: "text/event-stream")
                headers.add(name: "cache-control", value: "no-cache")
                proxy.addGatewayHeaders(&headers, record: record)
                sink.commitStream(headers)
                armTimer()
            case .emit(let bytes):
                sink.emit(ByteBuffer(bytes: bytes))
            case .releaseConnection(let reuse):
                releaseConnection(reuse: reuse)
            case .setReading(let on):
                if !on { proxy.metrics.clientBackpressure() }
                readingPaused = !on
                connection?.channel.setOption(ChannelOptions.autoRead, value: on).whenFailure { _ in }
            case .end(let ending):
                end(ending)
            }
        }
    }

    private func send(fresh: Bool) {
        if fresh { proxy.metrics.retry(reason: "stale_connection") }
        if !fresh, let pooled = connections.take(lease.backend) {
            record.hops.connect = .zero
            write(on: pooled, reused: true)
            return
        }
        let connecting = ContinuousClock.now
        connections.connect(lease.backend) { [self] result in
            record.hops.connect = .now - connecting
            guard machine.phase == .sending else {
                if case .success(let connection) = result { connection.abandon() }
                return
            }
            switch result {
            case .success(let connection): write(on: connection, reused: false)
            case .failure(let error): upstreamClosed(error)
            }
        }
    }

    private func write(on connection: UpstreamConnection, reused: Bool) {
        self.connection = connection
        connection.handler.delegate = self
        record.hops.sent = .now
        machine.sent(reused: reused, now: .now)
        var headers = HTTPHeaders()
        headers.add(name: "host", value: lease.backend.hostHeader)
        headers.add(name: "content-type", value: "application/json")
        headers.add(name: "accept", value: request.stream ? "text/event-stream" : "application/json")
        headers.add(name: "x-request-id", value: request.requestID)
        headers.add(name: "content-length", value: String(upstreamBody.readableBytes))
        let channel = connection.channel
        channel.write(
            HTTPClientRequestPart.head(
                HTTPRequestHead(version: .http1_1, method: .POST, uri: lease.backend.url.path + request.endpoint.rawValue, headers: headers)),
            promise: nil)
        channel.write(HTTPClientRequestPart.body(.byteBuffer(upstreamBody)), promise: nil)
        channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
    }

    private func releaseConnection(reuse: Bool) {
        guard let connection else { return }
        self.connection = nil
        if reuse {
            if readingPaused {
                readingPaused = false
                connection.channel.setOption(ChannelOptions.autoRead, value: true).whenFailure { _ in }
            }
            connections.giveBack(connection)
        } else {
            connection.abandon()
        }
    }

    // MARK: Endings

    private func end(_ ending: UpstreamExchange.Ending) {
        if let id = shutdownSubscription {
            proxy.shutdownNotice.unsubscribe(id)
            shutdownSubscription = nil
        }
        let backend = lease.backend.id
        switch ending {
        case .whole(let status, let contentType, let body):
            lease.preemption?.commit()
            let (out, final) = proxy.settleWhole(
                request, status: status, contentType: contentType, buffer: body, pool: pool, lease: lease, record: record, logger: logger)
            record = final
            var headers = HTTPHeaders()
            headers.add(name: "content-type", value: contentType ?? "application/json")
            proxy.addGatewayHeaders(&headers, record: record)
            sink.answer(status, headers, out)
        case .overloaded(let status, let retryAfter, let body):
            retry(proxy.overloaded(status: status, retryAfter: retryAfter, body: body, pool: pool, lease: lease))
        case .failedBeforeResponse(let error):
            retry(proxy.failedBeforeResponse(error, pool: pool, lease: lease, logger: logger))
        case .lostMidAnswer(let error):
            proxy.metrics.upstreamError(backend: backend, kind: .reset)
            proxy.release(pool, lease, .failure)
            fail(.upstream("The backend \(backend) closed the connection mid-response: \(error.map { "\($0)" } ?? "connection closed")"))
        case .tooLarge:
            proxy.metrics.upstreamError(backend: backend, kind: .reset)
            proxy.release(pool, lease, .failure)
            fail(.upstream("The backend \(backend) sent a response larger than \(Proxy.maxResponseBytes) bytes."))
        case .noFirstEvent(let readError):
            let malformed: String? = if case .malformed(let message) = machine.relay.stop { message } else { nil }
            proxy.metrics.upstreamError(backend: backend, kind: malformed == nil ? .reset : .malformed)
            proxy.release(pool, lease, .failure)
            if let malformed {
                fail(.upstream("The backend \(backend) sent a malformed stream: \(malformed)"))
            } else {
                retry(
                    Proxy.RetryableFailure(
                        reason: "reset", message: "\(backend) closed the stream before the first event: \(readError.map { "\($0)" } ?? "no data")"))
            }
        case .streamEnded(let stop, let readError):
            let ending = proxy.finishStream(
                stop: stop, relay: machine.relay, readError: readError, clientGone: stop == .clientClosed, tokens: machine.tokens,
                sent: machine.sent, timeouts: timeouts, pool: pool, lease: lease, record: record, logger: logger)
            sink.endStream(ending.map { ByteBuffer(bytes: $0) }, clientGone: stop == .clientClosed)
        case .stopped(let reason):
            switch proxy.stopped(reason, pool: pool, lease: lease) {
            case .preempted: sink.preempted()
            case .fail(let error): fail(error, clientGone: reason == .clientClosed)
            case .retry(let failure): retry(failure)
            case .done: break
            }
        }
    }

    private func retry(_ failure: Proxy.RetryableFailure) {
        logger.warning(
            "upstream attempt failed",
            metadata: [
                "request_id": "\(request.requestID)", "backend": "\(lease.backend.id)", "reason": "\(failure.reason)",
                "error": "\(failure.message)",
            ])
        sink.retry(failure)
    }

    private func fail(_ error: APIError, clientGone: Bool = false) {
        let headers = proxy.settle(error: error, record: &record, logger: logger)
        sink.failed(error, headers: headers, clientGone: clientGone)
    }
}
