import Logging
import ServiceLifecycle
import SwitchyardCore
import SwitchyardScheduling

/// The clock of the lane schedulers: every tick each pool applies timeout actions, preempts for
/// urgent lanes and adapts its windows; queue depths and windows go to metrics a few times a second.
struct PoolTicker: Service {
    let pools: [ModelPool]
    let metrics: GatewayMetrics
    let logger: Logger
    var tick: Duration = .milliseconds(10)
    var metricsEvery = 25

    func run() async throws {
        await cancelWhenGracefulShutdown {
            var n = 0
            while !Task.isCancelled {
                try? await Task.sleep(for: tick)
                n += 1
                for pool in pools {
                    let report = pool.tick()
                    guard n % metricsEvery == 0 else { continue }
                    for (lane, depth) in report.queueDepth { metrics.queueDepth(model: pool.name, lane: lane, depth) }
                    for (backend, window) in report.windows { metrics.backendWindow(backend: backend, window) }
                }
            }
        }
    }
}

/// Reads each replica's `/metrics` (llama.cpp `llamacpp:*`, vLLM `vllm:*`) for the pools that
/// enforce memory headroom or adapt their windows: KV-cache use, queue depth, deferrals.
struct SignalScraper: Service {
    let pools: [ModelPool]
    let client: UpstreamClient
    let logger: Logger

    func run() async throws {
        let watched = pools.filter { $0.config.memoryHeadroom != nil || $0.config.adaptiveConcurrency.enabled }
        guard !watched.isEmpty else { return }
        let interval = watched.map { ($0.config.memoryHeadroom ?? MemoryHeadroomConfig()).scrapeInterval }.min() ?? .milliseconds(500)
        await cancelWhenGracefulShutdown {
            var warned: Set<String> = []
            while !Task.isCancelled {
                await withTaskGroup(of: Void.self) { group in
                    for pool in watched {
                        for replica in pool.snapshot() where replica.healthy && !pool.isQuiet(replica.index) {
                            group.addTask { await scrape(pool, replica) }
                        }
                    }
                }
                for pool in watched {
                    for replica in pool.snapshot() where pool.metricsUnsupported(replica.index) && !warned.contains(replica.backend.id) {
                        warned.insert(replica.backend.id)
                        logger.warning("backend has no /metrics: KV-cache headroom and engine queue are not enforced for it (llama.cpp needs --metrics)",
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
                pool.recordSignals(replica.index, BackendSignals.parse(String(buffer: body), scrapedAt: pool.clock))
            }
        } catch {
            // Unreachable: the signals age and count as saturated once stale.
        }
    }
}
