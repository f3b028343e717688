import HTTPTypes
import Logging
import NIOCore
import NIOHTTP1
import SwitchyardCore
import Synchronization

/// The event-loop serving path for the common case: a chat or text completion (or embeddings
/// request of a model without coalescing) in a non-preemptible lane that gets a replica slot at once (nobody queued, a replica free).
/// Such a request is parsed, admitted, sent and relayed on the client connection's event loop,
/// over that loop's own keep-alive connection to the backend: no task, no thread hop, no lock
/// beyond the pool's.
///
/// Everything else goes to the router's ``Proxy`` path unchanged: bad requests (the router
/// writes the errors), queueing, preemptible lanes, embeddings to be coalesced. Both paths run
/// each attempt with the same ``ExchangeDriver``; they differ only in how the request waits. A fast attempt
/// that fails in a way another replica may fix (connection refused or reset, 429/503) before
/// any byte reached the client is handed to the router too, which retries it like its own
/// attempt: same request id, start time and budget, the failed replica excluded.
final class FastPath: Sendable {
    let gateway: Gateway
    /// Attempts made here, by client connection, for the request handed to the router next.
    private let handedBack = Mutex<[ObjectIdentifier: Proxy.PriorAttempt]>([:])
    private let paths: [String: Endpoint] = [
        "/v1/chat/completions": .chatCompletions, "/v1/completions": .completions,
        "/v1/embeddings": .embeddings,
    ]

    private let counts: GatewayMetrics.FastPathHandles

    init(gateway: Gateway) {
        self.gateway = gateway
        counts = gateway.proxy.metrics.fastPathHandles(lanes: gateway.config.lanes.map(\.name))
    }

    var maxBodyBytes: Int { gateway.config.server.maxBodyBytes }
    var proxy: Proxy { gateway.proxy }

    func makeHandler(for channel: any Channel) -> FastPathHandler {
        FastPathHandler(fastPath: self, connections: gateway.proxy.connections.connections(for: channel.eventLoop))
    }

    /// Whether the fast path may take the request: decided on its head, before its body.
    /// A request the fast path may capture. One that declares a body over the limit goes to the
    /// router, which answers 413 without waiting for the body.
    func mayServe(_ head: HTTPRequestHead) -> Bool {
        guard head.method == .POST, paths[head.uri] != nil else { return false }
        if let declared = head.headers.first(name: "content-length").flatMap({ Int($0) }), declared > maxBodyBytes { return false }
        return true
    }

    /// Starts serving the request here, or returns nil (nothing changed) for the router to serve.
    func start(head: HTTPRequestHead, body: ByteBuffer, handler: FastPathHandler) -> FastExchange? {
        let exchange = tryStart(head: head, body: body, handler: handler)
        (exchange == nil ? counts.declined : counts.served).increment()
        return exchange
    }

    private func tryStart(head: HTTPRequestHead, body: ByteBuffer, handler: FastPathHandler) -> FastExchange? {
        guard let endpoint = paths[head.uri] else { return nil }
        // One pass over the headers (each lookup by name is a scan); the first of each counts.
        var contentType: String?, authorization: String?, clientID: String?, laneName: String?, timeoutMs: String?
        for (name, value) in head.headers {
            func first(_ wanted: HTTPField.Name, _ slot: inout String?) {
                if slot == nil, Self.sameName(name, wanted.canonicalName) { slot = value }
            }
            first(.contentType, &contentType)
            first(.authorization, &authorization)
            first(GatewayHeaders.requestID, &clientID)
            first(GatewayHeaders.lane, &laneName)
            first(GatewayHeaders.timeoutMs, &timeoutMs)
        }
        if let contentType, !contentType.lowercased().hasPrefix("application/json") { return nil }
        guard case .success(let tenant) = gateway.authenticate(authorization: authorization) else { return nil }
        let requestID = Gateway.requestID(from: clientID)
        guard var request = try? ProxyRequest.parse(endpoint: endpoint, bytes: body.readableBytesView, requestID: requestID) else { return nil }
        request.tenant = tenant
        guard (try? gateway.applyLaneHeaders(lane: laneName, timeoutMs: timeoutMs, to: &request)) != nil,
            let lane = gateway.config.lane(named: request.lane), !lane.preemptible,
            let pool = gateway.pools[request.model]
        else { return nil }
        // Embeddings to be merged wait for their batch on the router path.
        if endpoint == .embeddings, proxy.batchers[request.model] != nil { return nil }
        let start = ContinuousClock.now
        let timeouts = pool.config.timeouts ?? gateway.config.upstream.timeouts
        var deadline = start + timeouts.total
        if let timeout = request.timeout { deadline = min(deadline, start + timeout) }
        let affinity = pool.config.routing.policy == .prefixAffinity ? request.affinityKey(prefixChars: pool.config.routing.prefixChars) : nil
        let ticket = ModelPool.Ticket(
            lane: request.lane, tenant: request.tenant, inputTokens: request.estimatedInputTokens,
            maxOutputTokens: request.maxOutputTokens,
            startBy: proxy.startBy(lane: lane, pool: pool, arrival: start, request: request),
            giveUpAt: deadline, affinityKey: affinity)
        guard let lease = pool.tryAcquireNow(ticket) else { return nil }
        guard lease.preemption == nil else {
            pool.release(lease, outcome: .neutral)
            return nil
        }
        // A tenant at its concurrent-stream limit: the router answers (and counts) the refusal.
        if proxy.takeStreamSlot(&request, countRefusal: false) != nil {
            pool.release(lease, outcome: .neutral)
            return nil
        }
        // The tenant's quotas: a refusal is answered by the router (it decides again, and
        // nothing was charged here).
        var quotaHeaders = HTTPHeaders()
        if let decision = gateway.quotas.admit(tenant: tenant, lane: request.lane, tokens: ticket.inputTokens + ticket.maxOutputTokens) {
            guard case .admitted(let grant) = decision else {
                pool.release(lease, outcome: .neutral)
                if request.streamSlot { proxy.streams.release(tenant) }
                return nil
            }
            request.quota = grant
            quotaHeaders = HTTPHeaders(Quotas.pairs(grant.status))
        }
        proxy.noteArrival()
        counts.queueWait[lane.name]?.record(0.0)  // every configured lane has one
        // The router must see the same id if the request is handed back.
        var head = head
        if clientID != requestID { head.headers.replaceOrAdd(name: GatewayHeaders.requestID.rawName, value: requestID) }
        return FastExchange(
            fastPath: self, handler: handler, head: head, body: body, request: request, pool: pool, lease: lease,
            timeouts: timeouts, start: start, deadline: deadline, closeAfter: !head.isKeepAlive, extraHeaders: quotaHeaders)
    }

    /// Whether header `name` is `lowercase` (ASCII letters, digits, `-`), in any case.
    static func sameName(_ name: String, _ lowercase: String) -> Bool {
        name.utf8.count == lowercase.utf8.count
            && zip(name.utf8, lowercase.utf8).allSatisfy { $0 == $1 || ((0x61...0x7A).contains($1) && $0 | 0x20 == $1) }
    }

    /// Passes a request whose fast attempt failed retryably to the router, which continues it.
    func handBack(_ exchange: FastExchange, prior: Proxy.PriorAttempt) {
        guard let connection = exchange.handler.connectionID else { return }
        proxy.metrics.fastPath("handed_back")
        handedBack.withLock { $0[connection] = prior }
        exchange.handler.handBack(exchange.head, body: exchange.body)
    }

    /// The attempt made here for the request the router is about to serve on `channel`, if any.
    func takeHandBack(_ channel: any Channel) -> Proxy.PriorAttempt? {
        handedBack.withLock { $0.removeValue(forKey: ObjectIdentifier(channel)) }
    }

    func forgetHandBack(_ connection: ObjectIdentifier) {
        handedBack.withLock { _ = $0.removeValue(forKey: connection) }
    }
}
