import Logging
import ServiceLifecycle
import SwitchyardCore
import SwitchyardScheduling

/// Reads each replica's `/metrics` (llama.cpp `llamacpp:*`, vLLM `vllm:*`, SGLang, TGI) where it is
/// needed: pools that enforce memory headroom or adapt their windows, and replicas whose capacity
/// is learned from the engine's waiting queue.
struct SignalScraper: Service {
    let pools: [ModelPool]
    let client: UpstreamClient
    let logger: Logger

    /// Pools that need every replica's signals.
    static func watchesAll(_ pool: ModelPool) -> Bool {
        pool.config.memoryHeadroom != nil || pool.config.adaptiveConcurrency.enabled
    }

    func run() async throws {
        let watched = pools.filter(Self.watchesAll)
        let interval = watched.map { ($0.config.memoryHeadroom ?? MemoryHeadroomConfig()).scrapeInterval }.min() ?? .milliseconds(500)
        await cancelWhenGracefulShutdown {
            var warned: Set<String> = []
            while !Task.isCancelled {
                await withTaskGroup(of: Void.self) { group in
                    for pool in pools {
                        let all = Self.watchesAll(pool)
                        for replica in pool.snapshot()
                        where replica.healthy && !pool.isQuiet(replica.index) && (all || replica.capacity.source == .learned) {
                            group.addTask { await scrape(pool, replica) }
                        }
                    }
                }
                for pool in watched {
                    for replica in pool.snapshot() where pool.metricsUnsupported(replica.index) && !warned.contains(replica.backend.id) {
                        warned.insert(replica.backend.id)
                        logger.warning(
                            "backend has no /metrics: KV-cache headroom and engine queue are not enforced for it (llama.cpp needs --metrics)",
                            metadata: ["model": "\(pool.name)", "backend": "\(replica.backend.id)"])
                    }
                }
                try? await Task.sleep(for: interval)
            }
        }
    }

    func scrape(_ pool: ModelPool, _ replica: ModelPool.ReplicaSnapshot) async {
        let url = replica.backend.url.origin + "/metrics"
        do {
            let (status, body) = try await client.get(url, timeout: .seconds(1))
            if status == 404 || status == 501 {
                pool.recordSignals(replica.index, nil, unsupported: true)
            } else if status == 200 {
                if let change = pool.recordSignals(replica.index, BackendSignals.parse(String(buffer: body), scrapedAt: pool.clock)) {
                    pool.report(change, backend: replica.backend.id, logger: logger)
                }
            }
        } catch {
            // Unreachable: the signals age and count as saturated once stale.
        }
    }
}
