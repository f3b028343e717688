import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle
import UnixSignals
import Synchronization
import SwitchyardCore

/// The OpenAI-compatible gateway: routes, pools, health checks and graceful shutdown.
///
/// ```swift
/// let gateway = Gateway(config: config, logger: logger)
/// try await gateway.run(signals: [.sigterm, .sigint]) { port in print("listening on \(port)") }
/// ```
public final class Gateway: Sendable {
    public let config: GatewayConfig
    public let metrics: GatewayMetrics
    public let pools: [String: ModelPool]
    let client: UpstreamClient
    let proxy: Proxy
    let monitor = TimeoutMonitor()
    let logger: Logger
    private let draining = Atomic<Bool>(false)
    private let group = Mutex<ServiceGroup?>(nil)
    private let replicas = Mutex<[String: ReplicaStatus]>([:])
    /// Managed replicas by admin id (`<model>-<index>`), in start order.
    private let controls = Mutex<[(id: String, model: String, index: Int, control: any ManagedReplicaControl)]>([])

    public init(config: GatewayConfig, logger: Logger, metrics: GatewayMetrics = GatewayMetrics()) {
        self.config = config
        self.logger = logger
        self.metrics = metrics
        client = UpstreamClient(config: config.upstream)
        var pools: [String: ModelPool] = [:]
        for model in config.models {
            pools[model.name] = ModelPool(config: model, health: config.health, outlier: config.outlier)
        }
        self.pools = pools
        proxy = Proxy(config: config, pools: pools, client: client, metrics: metrics, watch: ClientConnectionWatch(), monitor: monitor)
    }

    /// True once shutdown began: `/readyz` answers 503 so load balancers stop sending traffic.
    public var isDraining: Bool { draining.load(ordering: .relaxed) }

    public var isReady: Bool {
        !isDraining && !pools.isEmpty && pools.values.allSatisfy(\.isReady)
    }

    public var healthChecker: HealthChecker {
        HealthChecker(pools: config.models.compactMap { pools[$0.name] }, client: client, config: config.health, metrics: metrics, logger: logger)
    }

    func makeRouter() -> Router<GatewayContext> {
        let router = Router(context: GatewayContext.self)
        router.add(middleware: OpenAIErrorMiddleware())
        for endpoint in Endpoint.allCases {
            router.post(RouterPath("/v1" + endpoint.rawValue)) { [self] request, context in
                await self.proxyRoute(endpoint, request: request, context: context)
            }
        }
        router.get("/v1/models") { [self] _, _ in
            let data = config.models.map { model in
                JSONValue.object([("id", .string(model.name)), ("object", .string("model")), ("created", .number(0)),
                                  ("owned_by", .string("switchyard"))])
            }
            return GatewayResponses.json(.object([("object", .string("list")), ("data", .array(data))]))
        }
        router.get("/healthz") { _, _ in
            GatewayResponses.json(.object([("status", .string("ok"))]))
        }
        router.get("/readyz") { [self] _, _ in readiness() }
        router.get("/admin/backends") { [self] request, _ in
            if let denied = authorizeAdmin(request) { return denied }
            return adminBackends()
        }
        router.post("/admin/backends/:id/drain") { [self] request, context in
            if let denied = authorizeAdmin(request) { return denied }
            return await drain(id: context.parameters.get("id") ?? "")
        }
        router.post("/admin/backends/:id/resume") { [self] request, context in
            if let denied = authorizeAdmin(request) { return denied }
            return resume(id: context.parameters.get("id") ?? "")
        }
        router.post("/admin/backends") { [self] request, _ in
            if let denied = authorizeAdmin(request) { return denied }
            var request = request
            let body = (try? await request.collectBody(upTo: 64 * 1024)) ?? ByteBuffer()
            return register(body: body)
        }
        router.delete("/admin/backends/:id") { [self] request, context in
            if let denied = authorizeAdmin(request) { return denied }
            let id = context.parameters.get("id") ?? ""
            guard let (pool, index) = locate(id) else {
                return GatewayResponses.error(APIError(status: 404, message: "No backend '\(id)'.", type: "invalid_request_error", code: "backend_not_found"))
            }
            pool.deregister(index)
            return GatewayResponses.json(.object([("id", .string(id)), ("removed", .bool(true))]))
        }
        router.post("/admin/rollout") { [self] request, _ in
            if let denied = authorizeAdmin(request) { return denied }
            return await rollout()
        }
        router.get("/metrics") { [self] _, _ in
            Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                     body: .init(byteBuffer: ByteBuffer(bytes: metrics.render())))
        }
        return router
    }

    /// Records a managed replica's lifecycle (from its supervisor) for `/admin/backends` and metrics.
    public func recordReplica(_ status: ReplicaStatus) {
        let previous = replicas.withLock { map -> ReplicaStatus? in
            defer { map[status.url] = status }
            return map[status.url]
        }
        metrics.replica(status, previousRestarts: previous?.restarts ?? 0)
    }

    /// Lets the admin API drain, pause and restart a managed replica (backend `index` of `model`).
    public func registerManaged(model: String, index: Int, control: any ManagedReplicaControl) {
        controls.withLock { $0.append((id: "\(model)-\(index)", model: model, index: index, control: control)) }
    }

    /// Admin ids are `<model>-<index>` for every backend, managed or not.
    func locate(_ id: String) -> (pool: ModelPool, index: Int)? {
        guard let dash = id.lastIndex(of: "-"), let index = Int(id[id.index(after: dash)...]),
              let pool = pools[String(id[..<dash])], pool.isLive(index) else { return nil }
        return (pool, index)
    }

    /// Waits until no request is in flight on the replica (or the shutdown grace passed).
    func waitIdle(_ pool: ModelPool, _ index: Int) async {
        let deadline = ContinuousClock.now + config.server.shutdownGrace
        while pool.inflight(index) > 0, ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(20))
        }
    }

    func drain(id: String) async -> Response {
        guard let (pool, index) = locate(id) else {
            return GatewayResponses.error(APIError(status: 404, message: "No backend '\(id)'; ids are <model>-<index> as listed by GET /admin/backends.",
                                                   type: "invalid_request_error", code: "backend_not_found"))
        }
        let started = ContinuousClock.now
        pool.setGate(index, open: false)
        await waitIdle(pool, index)
        let control = controls.withLock { $0.first { $0.id == id }?.control }
        await control?.pause()
        logger.info("backend drained", metadata: ["backend": "\(id)", "stopped": "\(control != nil)"])
        return GatewayResponses.json(.object([
            ("id", .string(id)), ("drained", .bool(true)), ("inflight", .number(pool.inflight(index))),
            ("stopped", .bool(control != nil)), ("drain_ms", .number(Int(((ContinuousClock.now - started).seconds * 1000).rounded()))),
        ]))
    }

    func resume(id: String) -> Response {
        guard let (pool, index) = locate(id) else {
            return GatewayResponses.error(APIError(status: 404, message: "No backend '\(id)'.", type: "invalid_request_error", code: "backend_not_found"))
        }
        if let control = controls.withLock({ $0.first { $0.id == id }?.control }) {
            control.resume()  // the supervisor opens the gate again once warmed up
        } else {
            pool.setGate(index, open: true)
        }
        return GatewayResponses.json(.object([("id", .string(id)), ("resumed", .bool(true))]))
    }

    /// `POST /admin/backends {"url", "model", "ttl", "max_inflight"?, "upstream_model"?}`: registers a
    /// model server started elsewhere, or renews it (the heartbeat: post again before `ttl` ends).
    func register(body: ByteBuffer) -> Response {
        let json: JSONValue
        do {
            json = try JSONParser.parse(body.readableBytesView)
        } catch {
            return GatewayResponses.error(.invalidRequest("Invalid JSON: \(error).", code: "invalid_json"))
        }
        guard let url = json["url"]?.stringValue, HTTPURL(url) != nil else {
            return GatewayResponses.error(.invalidRequest("'url' must be the server's OpenAI base URL, e.g. http://10.0.0.5:8000/v1.", param: "url"))
        }
        guard let model = json["model"]?.stringValue, let pool = pools[model] else {
            return GatewayResponses.error(.invalidRequest("'model' must name a configured model: \(config.models.map(\.name).joined(separator: ", ")).", param: "model"))
        }
        let ttl: Duration
        if let seconds = json["ttl"]?.doubleValue, seconds > 0 {
            ttl = .milliseconds(Int64(seconds * 1000))
        } else if let text = json["ttl"]?.stringValue, let parsed = Duration.parse(text), parsed > .zero {
            ttl = parsed
        } else {
            return GatewayResponses.error(.invalidRequest("'ttl' must be a positive number of seconds or a duration such as 30s.", param: "ttl"))
        }
        var backend = BackendConfig(url: url, upstreamModel: json["upstream_model"]?.stringValue, maxInflight: json["max_inflight"]?.intValue ?? 0)
        backend.weight = json["weight"]?.doubleValue ?? 1
        let (index, isNew) = pool.register(backend, ttl: ttl)
        if isNew { logger.info("backend registered", metadata: ["model": "\(model)", "backend": "\(url)", "ttl": "\(ttl.formatted)"]) }
        return GatewayResponses.json(.object([("id", .string("\(model)-\(index)")), ("registered", .bool(isNew)), ("ttl_seconds", .number(String(ttl.seconds)))]),
                                     status: isNew ? .created : .ok)
    }

    /// Restarts managed replicas one at a time: drain → restart → ready → next.
    func rollout() async -> Response {
        let all = controls.withLock { $0 }
        var steps: [JSONValue] = []
        for entry in all {
            guard let pool = pools[entry.model] else { continue }
            let started = ContinuousClock.now
            let timeout = config.model(named: entry.model)?.managed?.readyTimeout ?? .seconds(120)
            let ok = await entry.control.rollingRestart(waitIdle: { [self] in await waitIdle(pool, entry.index) }, timeout: timeout)
            let seconds = (ContinuousClock.now - started).seconds
            steps.append(.object([("id", .string(entry.id)), ("ready", .bool(ok)), ("seconds", .number(String(format: "%.2f", seconds)))]))
            logger.info("rollout step", metadata: ["backend": "\(entry.id)", "ready": "\(ok)", "seconds": "\(String(format: "%.2f", seconds))"])
            if !ok {
                return GatewayResponses.json(.object([("completed", .bool(false)), ("steps", .array(steps))]), status: .internalServerError)
            }
        }
        return GatewayResponses.json(.object([("completed", .bool(true)), ("steps", .array(steps))]))
    }

    /// 403 unless the request carries `Authorization: Bearer <admin.token>` (compared in constant time).
    func authorizeAdmin(_ request: Request) -> Response? {
        guard let token = config.admin.token else {
            return GatewayResponses.error(APIError(status: 403, message: "The admin API is disabled: set admin.token in the configuration.",
                                                   type: "permission_error", code: "admin_disabled"))
        }
        let given = request.headers[.authorization].map { $0.hasPrefix("Bearer ") ? String($0.dropFirst(7)) : $0 } ?? ""
        guard Self.constantTimeEqual(Array(given.utf8), Array(token.utf8)) else {
            return GatewayResponses.error(APIError(status: 401, message: "Missing or wrong admin token.", type: "authentication_error", code: "invalid_admin_token"))
        }
        return nil
    }

    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        var diff = UInt8(truncatingIfNeeded: a.count ^ b.count)
        for i in 0..<max(a.count, b.count) {
            diff |= (i < a.count ? a[i] : 0) ^ (i < b.count ? b[i] : 0)
        }
        return diff == 0
    }

    func adminBackends() -> Response {
        let statuses = replicas.withLock { $0 }
        func number(_ d: Double?) -> JSONValue { d.map { .number(String(format: "%.3f", $0)) } ?? .null }
        var models: [JSONValue] = []
        for model in config.models {
            guard let pool = pools[model.name] else { continue }
            let backends = pool.snapshot().map { r -> JSONValue in
                var fields: [(String, JSONValue)] = [
                    ("url", .string(r.backend.id)), ("managed", .bool(r.backend.managed)), ("healthy", .bool(r.healthy)),
                    ("ejected", .bool(r.ejected)), ("accepting", .bool(r.gateOpen)), ("inflight", .number(r.inflight)),
                    ("max_inflight", .number(r.backend.maxInflight)), ("last_health_error", r.lastError.map(JSONValue.string) ?? .null),
                ]
                if let s = statuses[r.backend.id] {
                    fields += [("name", .string(s.name)), ("phase", .string(s.phase.rawValue)), ("pid", s.pid.map { .number(Int($0)) } ?? .null),
                               ("restarts", .number(s.restarts)), ("last_exit", s.lastExit.map(JSONValue.string) ?? .null),
                               ("load_seconds", number(s.loadSeconds)), ("warmup_seconds", number(s.warmupSeconds)),
                               ("ready_seconds", number(s.readySeconds))]
                }
                return .object(fields)
            }
            models.append(.object([("model", .string(model.name)), ("backends", .array(backends))]))
        }
        return GatewayResponses.json(.object([("models", .array(models))]))
    }

    func readiness() -> Response {
        var models: [(String, JSONValue)] = []
        for model in config.models {
            guard let pool = pools[model.name] else { continue }
            let replicas = pool.snapshot().map { r in
                JSONValue.object([("url", .string(r.backend.id)), ("healthy", .bool(r.healthy)), ("ejected", .bool(r.ejected)),
                                  ("inflight", .number(r.inflight)), ("error", r.lastError.map(JSONValue.string) ?? .null)])
            }
            models.append((model.name, .object([("ready", .bool(pool.isReady)), ("backends", .array(replicas))])))
        }
        let ready = isReady
        let status = isDraining ? "draining" : (ready ? "ready" : "not_ready")
        return GatewayResponses.json(.object([("status", .string(status)), ("models", .object(models))]),
                                     status: ready ? .ok : .serviceUnavailable)
    }

    func proxyRoute(_ endpoint: Endpoint, request: Request, context: GatewayContext) async -> Response {
        let requestID = Self.requestID(from: request.headers[GatewayHeaders.requestID])
        // Metadata is passed per call, not set on the logger: setting it re-renders the
        // handler's metadata on every request, measurable on the hot path.
        let logger = context.logger
        if let contentType = request.headers[.contentType], !contentType.lowercased().hasPrefix("application/json") {
            return proxy.reject(.unsupportedMediaType(contentType), requestID: requestID, logger: logger)
        }
        var request = request
        let bytes: ByteBuffer
        do {
            bytes = try await request.collectBody(upTo: config.server.maxBodyBytes)
        } catch {
            let apiError: APIError = (error as? any HTTPResponseError)?.status == .contentTooLarge
                ? .payloadTooLarge(limit: config.server.maxBodyBytes)
                : .invalidRequest("Could not read the request body: \(error)")
            return proxy.reject(apiError, requestID: requestID, logger: logger)
        }
        let parsed: ProxyRequest
        do {
            parsed = try ProxyRequest.parse(endpoint: endpoint, bytes: bytes.readableBytesView, requestID: requestID)
        } catch {
            return proxy.reject(error, requestID: requestID, logger: logger)
        }
        return await proxy.handle(parsed, channel: context.channel, logger: logger)
    }

    /// Keeps a client's id when it is short and printable, else makes one.
    static func requestID(from header: String?) -> String {
        if let header, !header.isEmpty, header.count <= 128,
           header.unicodeScalars.allSatisfy({ $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || "-_.:".unicodeScalars.contains($0)) }) {
            return header
        }
        var rng = SystemRandomNumberGenerator()
        let digits = Array("0123456789abcdef".utf8)
        var bytes = [UInt8](repeating: 0, count: 32)
        for half in 0..<2 {
            var value = rng.next() as UInt64
            for i in 0..<16 {
                bytes[half * 16 + 15 - i] = digits[Int(value & 0xF)]
                value >>= 4
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Serves until SIGTERM/SIGINT (or cancellation), then drains for `shutdown_grace`.
    /// - Parameter onListening: called with the bound port once the server accepts connections.
    /// - Parameter services: run beside the server and shut down after it has drained
    ///   (managed model-server supervisors).
    public func run(signals: [UnixSignal] = [.sigterm, .sigint], services: [any Service] = [],
                    onListening: @escaping @Sendable (Int) async -> Void = { _ in }) async throws {
        let app = Application(
            router: makeRouter(),
            configuration: .init(address: .hostname(config.server.host, port: config.server.port), serverName: "switchyard"),
            onServerRunning: { channel in await onListening(channel.localAddress?.port ?? 0) },
            logger: logger
        )
        let drain = DrainSignal { [self] in
            draining.store(true, ordering: .relaxed)
            logger.info("shutting down: readiness off, draining in-flight requests", metadata: ["grace": "\(config.server.shutdownGrace.formatted)"])
        }
        var configuration = ServiceGroupConfiguration(
            services: [
                // Shut down in reverse: readiness off first, timeouts enforced until the very end.
                .init(service: monitor, successTerminationBehavior: .ignore),
            ] + services.map { .init(service: $0, successTerminationBehavior: .ignore) } + [
                .init(service: app),
                .init(service: healthChecker, successTerminationBehavior: .ignore),
                .init(service: drain, successTerminationBehavior: .ignore),
            ],
            gracefulShutdownSignals: signals,
            cancellationSignals: [],
            logger: logger
        )
        configuration.maximumGracefulShutdownDuration = config.server.shutdownGrace
        let group = ServiceGroup(configuration: configuration)
        self.group.withLock { $0 = group }
        defer { self.group.withLock { $0 = nil } }
        do {
            try await group.run()
        } catch {
            try? await client.shutdown()
            throw error
        }
        try await client.shutdown()
    }
}

extension Gateway {
    /// Starts the same graceful shutdown as SIGTERM: readiness off, drain, then `run` returns.
    public func shutdown() async {
        await group.withLock { $0 }?.triggerGracefulShutdown()
    }
}

/// Flips readiness off the moment graceful shutdown starts (it is shut down first: last in the group).
struct DrainSignal: Service {
    let onShutdown: @Sendable () -> Void

    func run() async throws {
        try? await gracefulShutdown()
        onShutdown()
    }
}

import Foundation
