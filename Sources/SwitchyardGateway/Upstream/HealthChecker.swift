import Logging
import ServiceLifecycle
import SwitchyardCore
import SwitchyardScheduling

/// Active health checks: probes every backend each `interval` and feeds ``ModelPool``.
package struct HealthChecker: Service {
    let pools: [ModelPool]
    let client: UpstreamClient
    let config: HealthCheckConfig
    let metrics: GatewayMetrics
    let logger: Logger
    /// A backend came back healthy (or discovery never reached it): its capacity is asked again
    /// (it may have restarted with other settings).
    /// `capacity`: its capacity is asked again too (else only its batching, which is checked
    /// only when undecided).
    var onHealthy: @Sendable (ModelPool, Int, _ capacity: Bool) -> Void = { _, _, _ in }
    /// A round of checks finished.
    var onRound: @Sendable () -> Void = {}

    package func run() async throws {
        guard config.enabled else { return }
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                await checkAll()
                onRound()
                try? await Task.sleep(for: config.interval)
            }
        }
    }

    /// Runs one round of checks, all backends in parallel.
    package func checkAll() async {
        await withTaskGroup(of: Void.self) { group in
            for pool in pools {
                for gone in pool.reapExpired() {
                    logger.warning(
                        "registered backend removed: no heartbeat within its ttl", metadata: ["model": "\(pool.name)", "backend": "\(gone.id)"])
                    metrics.healthy(backend: gone.id, false)
                }
                for replica in pool.snapshot() {
                    group.addTask { await check(pool: pool, index: replica.index, backend: replica.backend) }
                }
            }
        }
    }

    func check(pool: ModelPool, index: Int, backend: Backend) async {
        let url = config.path.hasPrefix("/") ? backend.url.origin + config.path : backend.url.appending(config.path)
        var passed = false
        var problem: String?
        do {
            let (status, _) = try await client.get(url, timeout: config.timeout)
            passed = (200..<300).contains(status)
            if !passed { problem = "GET \(url) answered \(status)" }
        } catch {
            problem = "GET \(url) failed: \(error)"
        }
        if pool.recordHealthCheck(index, passed: passed, error: problem) {
            if passed {
                logger.info("backend healthy", metadata: ["model": "\(pool.name)", "backend": "\(backend.id)"])
                let capacity = pool.needsRediscovery(index)
                if capacity || pool.coalesces { onHealthy(pool, index, capacity) }
            } else {
                logger.warning("backend unhealthy", metadata: ["model": "\(pool.name)", "backend": "\(backend.id)", "error": "\(problem ?? "")"])
            }
        }
        if let replica = pool.snapshot().first(where: { $0.index == index }) {
            metrics.healthy(backend: backend.id, replica.healthy && !replica.ejected)
        }
    }
}
