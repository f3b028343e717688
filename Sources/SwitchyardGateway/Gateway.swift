import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import ServiceLifecycle
import SwitchyardBatch
import SwitchyardCore
import SwitchyardHTTPGuard
import SwitchyardScheduling
import Synchronization
import UnixSignals

/// The OpenAI-compatible gateway: routes, pools, health checks and graceful shutdown.
///
/// ```swift
/// let gateway = Gateway(config: config, logger: logger)
/// try await gateway.run(signals: [.sigterm, .sigint]) { port in print("listening on \(port)") }
/// ```
package final class Gateway: Sendable {
    /// The configuration in force (a reload replaces it; see ``reload(text:origin:)``). A request
    /// reads it once and finishes under what it read.
    package var config: GatewayConfig { live.current.config }
    let live: LiveConfig
    /// How the configuration is read again (SIGHUP, file change, `POST /admin/config`).
    let source: ConfigSource
    /// One reload at a time.
    let reloading = Mutex<Int>(0)
    package let metrics: GatewayMetrics
    package let pools: [String: ModelPool]
    let client: UpstreamClient
    let proxy: Proxy
    let logger: Logger
    private let draining = Atomic<Bool>(false)
    /// API keys → tenants, as configured now.
    var tenantKeys: TenantKeys { live.current.tenantKeys }
    private let group = Mutex<ServiceGroup?>(nil)
    /// The event-loop path for uncontended completions (nil when `server.fast_path` is off).
    let fastPath = Mutex<FastPath?>(nil)
    let replicas = Mutex<[String: ReplicaStatus]>([:])
    /// Managed replicas by admin id (`<model>-<index>`), in start order.
    let controls = Mutex<[(id: String, model: String, index: Int, control: any ManagedReplicaControl)]>([])
    /// Replicas whose capacity should be asked again (came back healthy).
    let discoveryRequests: (stream: AsyncStream<CapacityDiscovery.Target>, continuation: AsyncStream<CapacityDiscovery.Target>.Continuation)
    let startDiscovery = OneShotSignal()
    /// Rung after each round of health checks: readiness may have changed.
    let readinessBell = Doorbell()
    /// Tenants' request and token quotas.
    package let quotas: Quotas
    /// Open connections per client address (`server.limits.max_connections_per_client`).
    let clientConnections = ClientConnectionCounts()
    /// The listener's TLS context (`server.tls`), set when `run` starts; read again on SIGHUP.
    let listenerTLS = Mutex<ListenerTLS?>(nil)
    /// The Files and Batches APIs; nil: not served.
    package let batch: BatchService?

    /// - Parameter source: where the configuration is read again on reload; by default a
    ///   posted YAML is taken as is.
    package init(
        config: GatewayConfig, logger: Logger, metrics: GatewayMetrics = GatewayMetrics(), batch: BatchService? = nil,
        source: ConfigSource = ConfigSource()
    ) {
        let active = ActiveConfig(config: config, text: source.text, origin: "startup")
        live = LiveConfig(active)
        self.source = source
        metrics.configInfo(hash: active.hash)
        self.batch = batch
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
        quotas = Quotas(plan: QuotaBook.Plan(config.tenants))
        proxy = Proxy(live: live, pools: pools, client: client, metrics: metrics, watch: ClientConnectionWatch(), quotas: quotas)
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
            onHealthy: { [discoveryRequests] pool, index, capacity in
                discoveryRequests.continuation.yield(.init(pool: pool, index: index, capacity: capacity))
            },
            onRound: { [readinessBell] in readinessBell.ring() })
    }

    /// A replica opened to traffic (a managed one started or restarted): discovery asks its
    /// capacity and checks its batching again.
    package func replicaOpened(_ pool: ModelPool, _ index: Int) {
        discoveryRequests.continuation.yield(.init(pool: pool, index: index))
    }

    /// Returns once `/readyz` would answer 200 (every model has a replica that passed its health
    /// checks and takes traffic), or when the task is cancelled.
    package func waitUntilReady() async {
        while !isReady, !Task.isCancelled {
            // Health checks ring after each round; other changes (a gate opening) are seen
            // within a second.
            await readinessBell.wait(timeout: .seconds(1))
        }
    }

    var capacityDiscovery: CapacityDiscovery {
        CapacityDiscovery(
            pools: config.models.compactMap { pools[$0.name] }, client: client, timeout: config.upstream.discoveryTimeout,
            logger: logger, requests: discoveryRequests.stream, startRoundDone: startDiscovery,
            batching: BatchingCheck(client: client, timeout: config.upstream.discoveryTimeout * 4, metrics: metrics, logger: logger))
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
        let tls = try config.server.tls.map(ListenerTLS.init)
        // A CA file that is readable but not PEM stops the start here, with its field named,
        // rather than failing every https:// backend later (the health client would fall back).
        if config.upstream.caFile != nil { _ = try UpstreamTLS.configuration(config.upstream) }
        listenerTLS.withLock { $0 = tls }
        if let tls { metrics.tlsCertificateExpiry(tls.notAfter) }
        let app = Application(
            router: makeRouter(),
            server: HTTPServerBuilder { [config, metrics, clientConnections] responder in
                GatewayChannel(
                    responder: responder, fastPath: fastPath, limits: config.server.limits, metrics: metrics, connections: clientConnections,
                    tls: tls)
            },
            configuration: .init(address: .hostname(config.server.host, port: config.server.port), serverName: "switchyard"),
            onServerRunning: { channel in await onListening(channel.localAddress?.port ?? 0) },
            logger: logger
        )
        var helpers = services
        if let shared = config.limits {
            // Decisions stay per replica until the first round with PostgreSQL succeeded.
            let target = try PostgresDatabase.Target(
                url: shared.url, field: "limits.shared", passwordFile: shared.passwordFile, passwordField: "limits.password_file",
                environment: ProcessInfo.processInfo.environment)
            quotas.recordUsage()
            helpers.append(
                SharedQuotaSync(
                    quotas: quotas, db: try PostgresDatabase(target, logger: logger), interval: shared.syncInterval, logger: logger, metrics: metrics)
            )
        }
        let server = config.server
        let graceTimer = Mutex<Task<Void, Never>?>(nil)
        let drain = DrainSignal(delay: server.drainDelay) { [self] in
            draining.store(true, ordering: .relaxed)
            logger.info(
                "shutting down: readiness off, still accepting during the drain delay",
                metadata: ["drain_delay": "\(server.drainDelay.formatted)", "grace": "\(server.shutdownGrace.formatted)"])
        } onStopAccepting: { [self] in
            logger.info("shutting down: no longer accepting, in-flight requests finish within the grace")
            // At the end of the grace, what still runs ends visibly (an SSE error event, a 503).
            graceTimer.withLock {
                $0 = Task { [self] in
                    try? await Task.sleep(for: server.shutdownGrace)
                    guard !Task.isCancelled else { return }
                    logger.warning("shutdown grace ran out: ending the requests still in flight with server_shutdown")
                    for pool in pools.values { pool.shutDown() }
                    proxy.shutdownNotice.fire()
                }
            }
        }
        defer { graceTimer.withLock { $0?.cancel() } }
        var configuration = ServiceGroupConfiguration(
            // Shut down in reverse: readiness off and the drain delay first, then the listener
            // (in-flight requests finish), then the pools' helpers and the managed servers.
            services: helpers.map { .init(service: $0, successTerminationBehavior: .ignore) } + [
                .init(service: healthChecker, successTerminationBehavior: .ignore),
                .init(service: capacityDiscovery, successTerminationBehavior: .ignore),
                .init(service: PoolTicker(pools: Array(pools.values), metrics: metrics, logger: logger), successTerminationBehavior: .ignore),
                .init(service: SignalScraper(pools: Array(pools.values), client: client, logger: logger), successTerminationBehavior: .ignore),
                .init(service: ConfigWatcher(gateway: self), successTerminationBehavior: .ignore),
                .init(service: BackendDiscovery(gateway: self), successTerminationBehavior: .ignore),
                .init(service: app),
                .init(service: drain, successTerminationBehavior: .ignore),
            ],
            gracefulShutdownSignals: signals,
            cancellationSignals: [],
            logger: logger
        )
        // The grace's own end is handled above; this only bounds a shutdown that hangs.
        configuration.maximumGracefulShutdownDuration = server.drainDelay + server.shutdownGrace + .seconds(5)
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

/// Flips readiness off the moment graceful shutdown starts (it is shut down first: last in the
/// group), then holds the rest of the shutdown back for `delay`, while the listener still
/// accepts: Kubernetes removes a terminating pod from its Service's endpoints only after a
/// while, and connections meanwhile must not be refused.
struct DrainSignal: Service {
    let delay: Duration
    let onShutdown: @Sendable () -> Void
    let onStopAccepting: @Sendable () -> Void

    func run() async throws {
        try? await gracefulShutdown()
        onShutdown()
        if delay > .zero { try? await Task.sleep(for: delay) }
        onStopAccepting()
    }
}
