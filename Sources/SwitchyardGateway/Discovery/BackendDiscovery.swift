import Logging
import ServiceLifecycle
import SwitchyardCore
import SwitchyardScheduling

/// Keeps each pool with a `discovery:` section in step with what its source finds: DNS names
/// are resolved again when their records' TTL ends (between `min_interval` and
/// `max_interval`), EndpointSlices are watched. A new backend takes traffic once it passed a
/// health check (its capacity is asked then); a vanished one is drained, never cut mid-stream.
/// A failing source keeps the backends it last found.
struct BackendDiscovery: Service {
    let gateway: Gateway

    func run() async throws {
        let watched = gateway.config.models.compactMap { model in model.discovery.map { (model.name, $0) } }
        guard !watched.isEmpty else { return }
        await withTaskGroup(of: Void.self) { group in
            for (model, discovery) in watched {
                guard let pool = gateway.pools[model] else { continue }
                group.addTask { await follow(pool, discovery) }
            }
            try? await gracefulShutdown()
            group.cancelAll()
        }
    }

    func follow(_ pool: ModelPool, _ discovery: DiscoveryConfig) async {
        let logger = gateway.logger
        switch discovery.source {
        case .dns, .srv:
            let resolver: DNSResolver
            do {
                resolver = try DNSResolver(server: discovery.resolver)
            } catch {
                logger.error("discovery cannot start", metadata: ["model": "\(pool.name)", "source": "\(discovery.label)", "error": "\(error)"])
                return
            }
            await resolveLoop(pool, discovery, resolver)
        case .kubernetes(let endpoints):
            await EndpointSliceWatch(gateway: gateway, pool: pool, discovery: discovery, endpoints: endpoints).run()
        }
    }

    func resolveLoop(_ pool: ModelPool, _ discovery: DiscoveryConfig, _ resolver: DNSResolver) async {
        var failing = false
        while !Task.isCancelled {
            let wait: Duration
            do {
                let found: Resolution
                switch discovery.source {
                case .dns(let name, let port): found = try await resolver.addresses(name, port: port)
                case .srv(let name): found = try await resolver.services(name)
                case .kubernetes: return
                }
                if failing { gateway.logger.info("discovery answers again", metadata: ["model": "\(pool.name)", "source": "\(discovery.label)"]) }
                failing = false
                gateway.discovered(pool, discovery, found.endpoints.map { discovery.backend(host: $0.host, port: $0.port) })
                wait = min(max(found.ttl, discovery.minInterval), discovery.maxInterval)
            } catch {
                if !failing {
                    gateway.logger.warning(
                        "discovery failed; keeping the backends found before",
                        metadata: ["model": "\(pool.name)", "source": "\(discovery.label)", "error": "\(error)"])
                }
                failing = true
                gateway.metrics.discoveryError(model: pool.name, source: discovery.label)
                wait = min(max(.seconds(2), discovery.minInterval), discovery.maxInterval)
            }
            try? await Task.sleep(for: wait)
        }
    }
}

extension Gateway {
    /// What a discovery source found now: the pool follows it, new backends are checked at once.
    func discovered(_ pool: ModelPool, _ discovery: DiscoveryConfig, _ backends: [BackendConfig]) {
        let done = pool.syncDiscovered(source: discovery.label, backends: backends)
        let live = pool.snapshot()
        for index in done.discover {
            let url = live.first { $0.index == index }?.backend.id ?? "?"
            logger.info("backend discovered", metadata: ["model": "\(pool.name)", "source": "\(discovery.label)", "backend": "\(url)"])
        }
        for index in done.retiring {
            logger.info(
                "backend no longer discovered: draining",
                metadata: ["model": "\(pool.name)", "source": "\(discovery.label)", "backend": "\(pool.name)-\(index)"])
        }
        metrics.discoveredBackends(model: pool.name, source: discovery.label, backends.count)
        admit(pool, done)
    }

    /// New backends (a reload, discovery) start closed: each is opened once its health was
    /// checked (when checks are on) and its capacity asked, so its first requests run under
    /// the engine's real limit rather than the default. One that fails its check stays out of
    /// rotation until a later round passes.
    func admit(_ pool: ModelPool, _ done: PoolStateMachine.Reconfigured) {
        let indices = done.discover
        guard !indices.isEmpty else { return }
        let checker = config.health.enabled ? healthChecker : nil
        let discovery = capacityDiscovery
        Task {
            await withTaskGroup(of: Void.self) { group in
                for replica in pool.snapshot() where indices.contains(replica.index) {
                    group.addTask {
                        await checker?.check(pool: pool, index: replica.index, backend: replica.backend)
                        await discovery.discover(pool, replica.index)
                        if done.added.contains(replica.index) { pool.setGate(replica.index, open: true) }
                    }
                }
            }
        }
    }
}
