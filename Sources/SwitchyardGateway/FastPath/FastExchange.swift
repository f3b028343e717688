import HTTPTypes
import Logging
import NIOCore
import NIOHTTP1
import SwitchyardCore
import SwitchyardScheduling

/// The fast path's side of one request: its ``ExchangeDriver`` (the same one the router path
/// uses) writes to the client connection's ``FastPathHandler`` through this sink, all on the
/// connection's event loop.
final class FastExchange: ExchangeSink {
    let fastPath: FastPath
    let handler: FastPathHandler
    /// The client's request as received (with its request id), kept for a hand-back.
    let head: HTTPRequestHead
    let body: ByteBuffer
    private let closeAfter: Bool
    /// Added to the response head (the tenant's rate-limit headers).
    private let extraHeaders: HTTPHeaders
    private var driver: ExchangeDriver?
    /// The quota charged for it, carried into a hand-back.
    private let quota: QuotaBook.Grant?
    private let streamSlot: Bool

    init(
        fastPath: FastPath, handler: FastPathHandler, head: HTTPRequestHead, body: ByteBuffer, request: ProxyRequest, pool: ModelPool,
        lease: ModelPool.Lease, timeouts: TimeoutConfig, start: ContinuousClock.Instant, deadline: ContinuousClock.Instant, closeAfter: Bool,
        extraHeaders: HTTPHeaders = HTTPHeaders()
    ) {
        self.extraHeaders = extraHeaders
        quota = request.quota
        streamSlot = request.streamSlot
        self.fastPath = fastPath
        self.handler = handler
        self.head = head
        self.body = body
        self.closeAfter = closeAfter
        var record = Proxy.Record(
            start: start,
            request: Proxy.ProxyRequestSummary(
                id: request.requestID, quota: request.quota, streamSlot: request.streamSlot, tenant: request.tenant, model: request.model,
                lane: request.lane, stream: request.stream),
            model: request.model)
        record.attempts = 1
        record.backend = lease.backend.id
        record.route = lease.viaAffinity ? "affinity" : "least_load"
        driver = ExchangeDriver(
            proxy: fastPath.proxy, sink: self, connections: handler.connections, request: request, body: body, pool: pool, lease: lease,
            timeouts: timeouts, deadline: deadline, record: record, logger: fastPath.gateway.logger)
    }

    func begin() { driver?.begin() }
    func clientClosed() { driver?.clientGone() }
    func clientWritable(_ writable: Bool) { driver?.clientWritable(writable) }
    func timerFired() -> NIODeadline? { driver?.timerFired() }

    // MARK: ExchangeSink

    func commitStream(_ headers: HTTPHeaders) {
        var headers = headers
        headers.add(name: "server", value: "switchyard")
        headers.add(contentsOf: extraHeaders)
        handler.send(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers)))
    }

    func emit(_ bytes: ByteBuffer) {
        handler.send(.body(.byteBuffer(bytes)))
    }

    func flush() {
        handler.flush()
    }

    func endStream(_ ending: ByteBuffer?, clientGone: Bool) {
        if !clientGone {
            if let ending { handler.send(.body(.byteBuffer(ending))) }
            handler.send(.end(nil), flush: true)
        }
        complete()
    }

    func answer(_ status: Int, _ headers: HTTPHeaders, _ body: ByteBuffer) {
        var headers = headers
        headers.add(name: "content-length", value: String(body.readableBytes))
        headers.add(name: "server", value: "switchyard")
        headers.add(contentsOf: extraHeaders)
        handler.send(.head(HTTPResponseHead(version: .http1_1, status: HTTPResponseStatus(statusCode: status), headers: headers)))
        handler.send(.body(.byteBuffer(body)))
        handler.send(.end(nil), flush: true)
        complete()
    }

    func failed(_ error: APIError, headers: HTTPFields, clientGone: Bool) {
        guard !clientGone else {
            complete()
            return
        }
        let (head, body) = GatewayResponses.errorParts(error, headers: headers)
        answer(head.status.code, HTTPHeaders(head.headerFields), body)
    }

    /// Nothing reached the client and another replica may do better: the router continues.
    func retry(_ failure: Proxy.RetryableFailure) {
        guard let driver else { return }
        self.driver = nil
        fastPath.handBack(
            self,
            prior: Proxy.PriorAttempt(
                start: driver.record.start, replica: driver.lease.index, backend: driver.lease.backend.id,
                route: driver.record.route ?? "least_load", failure: failure, quota: quota, streamSlot: streamSlot))
    }

    /// Not expected (the fast path serves no preemptible lane): the request waits in its lane again.
    func preempted() {
        retry(Proxy.RetryableFailure(reason: "preempted", message: "preempted", requeue: true))
    }

    func armTimer(by deadline: NIODeadline) {
        handler.checkTimeouts(by: deadline)
    }

    private func complete() {
        driver = nil
        handler.exchangeDone(close: closeAfter)
    }
}
