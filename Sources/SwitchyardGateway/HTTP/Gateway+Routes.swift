import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import ServiceLifecycle
import SwitchyardCore
import SwitchyardScheduling
import Synchronization
import UnixSignals

/// The routes: the OpenAI endpoints (through the proxy), models, health and readiness.
extension Gateway {
    func makeRouter() -> Router<GatewayContext> { makeRoutes().router }

    /// The router, with the list of what it serves (`OpenAPITests` compares it with the
    /// OpenAPI document).
    func makeRoutes() -> RouteRecorder<GatewayContext> {
        let router = RouteRecorder(Router(context: GatewayContext.self))
        router.add(middleware: OpenAIErrorMiddleware())
        // Every /admin call: the token checked, then the call written to the audit log.
        router.add(middleware: AdminAuditMiddleware(gateway: self))
        for endpoint in Endpoint.allCases {
            router.post(RouterPath("/v1" + endpoint.rawValue)) { [self] request, context in
                await self.proxyRoute(endpoint, request: request, context: context)
            }
        }
        addBatchRoutes(to: router)
        router.get("/v1/models") { [self] request, _ in
            if case .failure(let error) = authenticate(request) { return GatewayResponses.error(error) }
            let data = config.models.map { model in
                JSONValue.object([
                    ("id", .string(model.name)), ("object", .string("model")), ("created", .number(0)),
                    ("owned_by", .string("switchyard")),
                ])
            }
            return GatewayResponses.json(.object([("object", .string("list")), ("data", .array(data))]))
        }
        router.get("/healthz") { _, _ in
            GatewayResponses.json(.object([("status", .string("ok"))]))
        }
        router.get("/readyz") { [self] _, _ in readiness() }
        router.get("/admin/backends") { [self] request, _ in
            return adminBackends()
        }
        router.post("/admin/backends/:id/drain") { [self] request, context in
            return await drain(id: context.parameters.get("id") ?? "", stop: request.uri.queryParameters["stop"] != "false")
        }
        router.post("/admin/backends/:id/resume") { [self] request, context in
            return resume(id: context.parameters.get("id") ?? "")
        }
        router.post("/admin/backends") { [self] request, _ in
            var request = request
            let body = (try? await request.collectBody(upTo: 64 * 1024)) ?? ByteBuffer()
            return await register(body: body)
        }
        router.delete("/admin/backends/:id") { [self] request, context in
            return await deregister(id: context.parameters.get("id") ?? "")
        }
        router.get("/admin/describe") { [self] request, _ in
            return adminDescribe(format: request.uri.queryParameters["format"].map(String.init))
        }
        router.get("/admin/config") { [self] request, _ in
            return adminConfig()
        }
        router.post("/admin/config") { [self] request, _ in
            var request = request
            guard let body = try? await request.collectBody(upTo: config.server.maxBodyBytes) else {
                return GatewayResponses.error(.payloadTooLarge(limit: config.server.maxBodyBytes))
            }
            return adminReload(reload(text: String(buffer: body), origin: "admin"))
        }
        router.post("/admin/config/rollback") { [self] request, _ in
            guard let outcome = rollback() else {
                return GatewayResponses.error(
                    APIError(
                        status: 409, message: "No previous configuration: nothing was reloaded since the gateway started.",
                        type: "invalid_request_error", code: "no_previous_config"))
            }
            return adminReload(outcome)
        }
        router.post("/admin/rollout") { [self] request, _ in
            return await rollout()
        }
        let openAPI = ByteBuffer(bytes: OpenAPIDocument.json(models: config.models.map(\.name)))
        router.get("/openapi.json") { _, _ in
            Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: openAPI))
        }
        router.get("/metrics") { [self] _, _ in
            var text = ByteBuffer(bytes: metrics.render())
            if let batch { text.writeString(batch.metrics.render(lane: LaneConfig.batch)) }
            return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4"], body: .init(byteBuffer: text))
        }
        return router
    }

    func readiness() -> Response {
        var models: [(String, JSONValue)] = []
        for model in config.models {
            guard let pool = pools[model.name] else { continue }
            let replicas = pool.snapshot().map { r in
                var fields: [(String, JSONValue)] = [
                    ("id", .string("\(model.name)-\(r.index)")), ("url", .string(r.backend.id)), ("state", .string(r.state.rawValue)),
                    ("healthy", .bool(r.healthy)), ("ejected", .bool(r.ejected)),
                    ("inflight", .number(r.inflight)), ("window", .number(r.window)),
                    ("capacity", r.capacity.json),
                    ("error", r.lastError.map(JSONValue.string) ?? .null),
                ]
                if pool.coalesces {
                    // Whether merged embeddings requests may go to it, and why not.
                    let coalescing: String =
                        switch r.batching {
                        case .invariant: "on"
                        case .variant(let why): "off: \(why)"
                        case nil: "unchecked"
                        }
                    fields.append(("coalescing", .string(coalescing)))
                }
                if let e = r.engine {
                    func value(_ v: Double?) -> JSONValue { v.map { .number(String($0)) } ?? .null }
                    fields.append(
                        (
                            "engine",
                            .object([
                                ("running", value(e.running)), ("waiting", value(e.waiting)),
                                ("kv_cache_usage", value(e.kvCacheUsage)),
                                ("age_seconds", .number(String(((pool.clock - e.scrapedAt).seconds * 1000).rounded() / 1000))),
                            ])
                        ))
                }
                return JSONValue.object(fields)
            }
            models.append((model.name, .object([("ready", .bool(pool.isReady)), ("backends", .array(replicas))])))
        }
        let ready = isReady
        let status = isDraining ? "draining" : (ready ? "ready" : "not_ready")
        return GatewayResponses.json(
            .object([("status", .string(status)), ("models", .object(models))]),
            status: ready ? .ok : .serviceUnavailable)
    }

    func proxyRoute(_ endpoint: Endpoint, request: Request, context: GatewayContext) async -> Response {
        let requestID = Self.requestID(from: request.headers[GatewayHeaders.requestID])
        // Metadata is passed per call, not set on the logger: setting it re-renders the
        // handler's metadata on every request, measurable on the hot path.
        let logger = context.logger
        let tenant: String
        switch authenticate(request) {
        case .success(let name): tenant = name
        case .failure(let error): return proxy.reject(error, requestID: requestID, logger: logger)
        }
        if let contentType = request.headers[.contentType], !contentType.lowercased().hasPrefix("application/json") {
            return proxy.reject(.unsupportedMediaType(contentType), requestID: requestID, logger: logger)
        }
        // A declared length over the limit is refused at once, before any of the body is read.
        if let declared = request.headers[.contentLength].flatMap({ Int($0) }), declared > config.server.maxBodyBytes {
            metrics.refused(reason: "body_too_large")
            return proxy.reject(.payloadTooLarge(limit: config.server.maxBodyBytes), requestID: requestID, logger: logger)
        }
        var request = request
        let bytes: ByteBuffer
        do {
            bytes = try await request.collectBody(upTo: config.server.maxBodyBytes)
        } catch {
            let tooLarge = (error as? any HTTPResponseError)?.status == .contentTooLarge
            if tooLarge { metrics.refused(reason: "body_too_large") }
            let apiError: APIError =
                tooLarge ? .payloadTooLarge(limit: config.server.maxBodyBytes) : .invalidRequest("Could not read the request body: \(error)")
            return proxy.reject(apiError, requestID: requestID, logger: logger)
        }
        var parsed: ProxyRequest
        do {
            parsed = try ProxyRequest.parse(endpoint: endpoint, bytes: bytes.readableBytesView, requestID: requestID)
            parsed.tenant = tenant
            try applyLaneHeaders(request.headers, to: &parsed)
        } catch {
            return proxy.reject(error, requestID: requestID, logger: logger)
        }
        var quotaHeaders: HTTPFields?
        let prior = fastPath.withLock { $0 }?.takeHandBack(context.channel)
        if prior?.streamSlot == true {
            parsed.streamSlot = true
        } else if let refusal = proxy.takeStreamSlot(&parsed) {
            return proxy.reject(refusal, requestID: requestID, logger: logger)
        }
        if let grant = prior?.quota {
            // Charged on the fast path before it handed the request over.
            parsed.quota = grant
            quotaHeaders = Quotas.headers(grant.status)
        } else if let decision = quotas.admit(tenant: tenant, lane: parsed.lane, tokens: parsed.estimatedInputTokens + parsed.maxOutputTokens) {
            switch decision {
            case .admitted(let grant):
                parsed.quota = grant
                quotaHeaders = Quotas.headers(grant.status)
            case .refused(let refusal):
                metrics.quotaRefused(tenant: tenant, limit: refusal.limit)
                if parsed.streamSlot { proxy.streams.release(tenant) }
                let error = APIError(
                    status: 429, message: refusal.message,
                    type: refusal.limit == "requests" ? "requests" : refusal.limit == "daily_tokens" ? "insufficient_quota" : "tokens",
                    code: refusal.limit == "daily_tokens" ? "daily_budget_exceeded" : "rate_limit_exceeded")
                var response = proxy.reject(error, requestID: requestID, logger: logger)
                let wait: Duration? = refusal.limit == "tokens_too_large" ? nil : refusal.retryAfter
                for field in Quotas.headers(refusal.status, retryAfter: wait) { response.headers.append(field) }
                return response
            }
        }
        var response = await proxy.handle(parsed, channel: context.channel, prior: prior, logger: logger)
        if let quotaHeaders { for field in quotaHeaders { response.headers.append(field) } }
        return response
    }
}

/// Passes routes on to a Hummingbird router and remembers each as `METHOD /path/{param}`.
final class RouteRecorder<Context: RequestContext>: RouterMethods {
    let router: Router<Context>
    private(set) var routes: [String] = []

    init(_ router: Router<Context>) { self.router = router }

    @discardableResult func on<Responder: HTTPResponder>(_ path: RouterPath, method: HTTPRequest.Method, responder: Responder) -> Self
    where Responder.Context == Context {
        routes.append("\(method) \(path)")
        router.on(path, method: method, responder: responder)
        return self
    }

    @discardableResult func add(middleware: any MiddlewareProtocol<Request, Response, Context>) -> Self {
        router.add(middleware: middleware)
        return self
    }
}
