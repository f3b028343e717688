import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import ServiceLifecycle
import SwitchyardCore
import Synchronization
import UnixSignals

/// The OpenAI-compatible gateway: routes, pools, health checks and graceful shutdown.
///
/// ```swift
/// let gateway = Gateway(config: config, logger: logger)
/// try await gateway.run(signals: [.sigterm, .sigint]) { port in print("listening on \(port)") }
/// ```
package final class Gateway: Sendable {
    package let config: GatewayConfig
    package let metrics: GatewayMetrics
    package let pools: [String: ModelPool]
    let client: UpstreamClient
    let proxy: Proxy
    let logger: Logger
    private let draining = Atomic<Bool>(false)
    /// SHA-256 hex of each API key → tenant name.
    let tenantsByKeyHash: [String: String]
    private let group = Mutex<ServiceGroup?>(nil)
    /// The event-loop path for uncontended completions (nil when `server.fast_path` is off).
    let fastPath = Mutex<FastPath?>(nil)
    let replicas = Mutex<[String: ReplicaStatus]>([:])
    /// Managed replicas by admin id (`<model>-<index>`), in start order.
    let controls = Mutex<[(id: String, model: String, index: Int, control: any ManagedReplicaControl)]>([])
    /// Replicas whose capacity should be asked again (came back healthy).
    let discoveryRequests: (stream: AsyncStream<CapacityDiscovery.Target>, continuation: AsyncStream<CapacityDiscovery.Target>.Continuation)
    let startDiscovery = OneShotSignal()

    package init(config: GatewayConfig, logger: Logger, metrics: GatewayMetrics = GatewayMetrics()) {
        self.config = config
        self.logger = logger
        self.metrics = metrics
        client = UpstreamClient(config: config.upstream)
        var pools: [String: ModelPool] = [:]
        for model in config.models {
            pools[model.name] = ModelPool(
                config: model, health: config.health, outlier: config.outlier, lanes: config.lanes,
                tenantWeights: Dictionary(config.tenants.map { ($0.name, $0.weight) }, uniquingKeysWith: { a, _ in a }),
                defaultMaxInflight: config.upstream.defaultMaxInflight)
        }
        self.pools = pools
        tenantsByKeyHash = Dictionary(config.tenants.map { ($0.apiKeySHA256, $0.name) }, uniquingKeysWith: { first, _ in first })
        proxy = Proxy(config: config, pools: pools, client: client, metrics: metrics, watch: ClientConnectionWatch())
        discoveryRequests = AsyncStream.makeStream(of: CapacityDiscovery.Target.self)
    }

    /// Returns once every backend's capacity was asked for at start, whatever the answer (an
    /// unreachable or odd backend still counts), or when the waiting task is cancelled.
    package func startDiscoveryFinished() async {
        await startDiscovery.wait()
    }

    /// True once shutdown began: `/readyz` answers 503 so load balancers stop sending traffic.
    package var isDraining: Bool { draining.load(ordering: .relaxed) }

    package var isReady: Bool {
        !isDraining && !pools.isEmpty && pools.values.allSatisfy(\.isReady)
    }

    package var healthChecker: HealthChecker {
        HealthChecker(
            pools: config.models.compactMap { pools[$0.name] }, client: client, config: config.health, metrics: metrics, logger: logger,
            onHealthy: { [discoveryRequests] pool, index in discoveryRequests.continuation.yield(.init(pool: pool, index: index)) })
    }

    var capacityDiscovery: CapacityDiscovery {
        CapacityDiscovery(
            pools: config.models.compactMap { pools[$0.name] }, client: client, timeout: config.upstream.discoveryTimeout,
            logger: logger, requests: discoveryRequests.stream, startRoundDone: startDiscovery)
    }

    func makeRouter() -> Router<GatewayContext> {
        let router = Router(context: GatewayContext.self)
        router.add(middleware: OpenAIErrorMiddleware())
        for endpoint in Endpoint.allCases {
            router.post(RouterPath("/v1" + endpoint.rawValue)) { [self] request, context in
                await self.proxyRoute(endpoint, request: request, context: context)
            }
        }
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
            return await register(body: body)
        }
        router.delete("/admin/backends/:id") { [self] request, context in
            if let denied = authorizeAdmin(request) { return denied }
            let id = context.parameters.get("id") ?? ""
            guard let (pool, index) = locate(id) else {
                return GatewayResponses.error(
                    APIError(status: 404, message: "No backend '\(id)'.", type: "invalid_request_error", code: "backend_not_found"))
            }
            pool.deregister(index)
            return GatewayResponses.json(.object([("id", .string(id)), ("removed", .bool(true))]))
        }
        router.post("/admin/rollout") { [self] request, _ in
            if let denied = authorizeAdmin(request) { return denied }
            return await rollout()
        }
        router.get("/metrics") { [self] _, _ in
            Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                body: .init(byteBuffer: ByteBuffer(bytes: metrics.render())))
        }
        return router
    }

    func readiness() -> Response {
        var models: [(String, JSONValue)] = []
        for model in config.models {
            guard let pool = pools[model.name] else { continue }
            let replicas = pool.snapshot().map { r in
                var fields: [(String, JSONValue)] = [
                    ("url", .string(r.backend.id)), ("healthy", .bool(r.healthy)), ("ejected", .bool(r.ejected)),
                    ("inflight", .number(r.inflight)), ("window", .number(r.window)),
                    ("capacity", r.capacity.json),
                    ("error", r.lastError.map(JSONValue.string) ?? .null),
                ]
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
        var request = request
        let bytes: ByteBuffer
        do {
            bytes = try await request.collectBody(upTo: config.server.maxBodyBytes)
        } catch {
            let apiError: APIError =
                (error as? any HTTPResponseError)?.status == .contentTooLarge
                ? .payloadTooLarge(limit: config.server.maxBodyBytes)
                : .invalidRequest("Could not read the request body: \(error)")
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
        let prior = fastPath.withLock { $0 }?.takeHandBack(context.channel)
        return await proxy.handle(parsed, channel: context.channel, prior: prior, logger: logger)
    }

    /// `x-switchyard-lane` picks a configured lane; `x-switchyard-timeout-ms` shortens the deadline.
    func applyLaneHeaders(_ headers: HTTPFields, to request: inout ProxyRequest) throws(APIError) {
        try applyLaneHeaders(lane: headers[GatewayHeaders.lane], timeoutMs: headers[GatewayHeaders.timeoutMs], to: &request)
    }

    func applyLaneHeaders(lane: String?, timeoutMs: String?, to request: inout ProxyRequest) throws(APIError) {
        if let lane {
            guard config.lane(named: lane) != nil else {
                throw APIError.invalidRequest(
                    "Unknown lane '\(lane)' in x-switchyard-lane; configured lanes: \(config.lanes.map(\.name).joined(separator: ", ")).",
                    param: "x-switchyard-lane", code: "invalid_value")
            }
            request.lane = lane
        }
        if let text = timeoutMs {
            guard let ms = Int(text.trimmingCharacters(in: .whitespaces)), ms > 0 else {
                throw APIError.invalidRequest(
                    "Invalid x-switchyard-timeout-ms '\(text)': expected a positive whole number of milliseconds.",
                    param: "x-switchyard-timeout-ms", code: "invalid_value")
            }
            request.timeout = .milliseconds(ms)
        }
    }

    /// The tenant for a request's `Authorization: Bearer <key>`; any request passes as
    /// `anonymous` when no tenants are configured. Keys are compared by their SHA-256.
    func authenticate(_ request: Request) -> Result<String, APIError> {
        authenticate(authorization: tenantsByKeyHash.isEmpty ? nil : request.headers[.authorization])
    }

    func authenticate(authorization header: String?) -> Result<String, APIError> {
        guard !tenantsByKeyHash.isEmpty else { return .success("anonymous") }
        guard let header, header.hasPrefix("Bearer "), header.count > 7 else {
            return .failure(
                APIError(
                    status: 401, message: "You didn't provide an API key. Send it as 'Authorization: Bearer YOUR_KEY'.",
                    type: "invalid_request_error", code: "invalid_api_key"))
        }
        guard let tenant = tenantsByKeyHash[Digest.sha256Hex(String(header.dropFirst(7)))] else {
            return .failure(APIError(status: 401, message: "Incorrect API key provided.", type: "invalid_request_error", code: "invalid_api_key"))
        }
        return .success(tenant)
    }

    private static let idKeys: [UInt64] = {
        var rng = SystemRandomNumberGenerator()
        return [rng.next(), rng.next()]
    }()
    private static let idCounter = Atomic<UInt64>(0)

    /// Keeps a client's id when it is short and printable, else makes one.
    static func requestID(from header: String?) -> String {
        if let header, !header.isEmpty, header.count <= 128,
            header.unicodeScalars.allSatisfy({
                $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || "-_.:".unicodeScalars.contains($0))
            })
        {
            return header
        }
        // A counter through a bijective mix with random keys: unique in the process, not
        // sequential-looking, and no system call per request.
        let n = idCounter.wrappingAdd(1, ordering: .relaxed).newValue
        return String(unsafeUninitializedCapacity: 32) { bytes in
            for half in 0..<2 {
                var value = SplitMix64.mix(n &+ idKeys[half])
                for i in 0..<16 {
                    let digit = UInt8(truncatingIfNeeded: value & 0xF)
                    bytes[half * 16 + 15 - i] = digit < 10 ? UInt8(ascii: "0") + digit : UInt8(ascii: "a") + digit - 10
                    value >>= 4
                }
            }
            return 32
        }
    }

    /// Serves until SIGTERM/SIGINT (or cancellation), then drains for `shutdown_grace`.
    /// - Parameter onListening: called with the bound port once the server accepts connections.
    /// - Parameter services: run beside the server and shut down after it has drained
    ///   (managed model-server supervisors).
    package func run(
        signals: [UnixSignal] = [.sigterm, .sigint], services: [any Service] = [],
        onListening: @escaping @Sendable (Int) async -> Void = { _ in }
    ) async throws {
        let fastPath = config.server.fastPath ? FastPath(gateway: self) : nil
        self.fastPath.withLock { $0 = fastPath }
        let app = Application(
            router: makeRouter(),
            server: HTTPServerBuilder { responder in GatewayChannel(responder: responder, fastPath: fastPath) },
            configuration: .init(address: .hostname(config.server.host, port: config.server.port), serverName: "switchyard"),
            onServerRunning: { channel in await onListening(channel.localAddress?.port ?? 0) },
            logger: logger
        )
        let drain = DrainSignal { [self] in
            draining.store(true, ordering: .relaxed)
            logger.info("shutting down: readiness off, draining in-flight requests", metadata: ["grace": "\(config.server.shutdownGrace.formatted)"])
        }
        var configuration = ServiceGroupConfiguration(
            // Shut down in reverse: readiness off first.
            services: services.map { .init(service: $0, successTerminationBehavior: .ignore) } + [
                .init(service: app),
                .init(service: healthChecker, successTerminationBehavior: .ignore),
                .init(service: capacityDiscovery, successTerminationBehavior: .ignore),
                .init(service: PoolTicker(pools: Array(pools.values), metrics: metrics, logger: logger), successTerminationBehavior: .ignore),
                .init(service: SignalScraper(pools: Array(pools.values), client: client, logger: logger), successTerminationBehavior: .ignore),
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
    package func shutdown() async {
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
