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
                    for (backend, change) in report.capacityChanges { pool.report(change, backend: backend, logger: logger) }
                    guard n % metricsEvery == 0 else { continue }
                    for (lane, depth) in report.queueDepth { metrics.queueDepth(model: pool.name, lane: lane, depth) }
                    for (backend, window) in report.windows { metrics.backendWindow(backend: backend, window) }
                    for replica in pool.snapshot() {
                        metrics.backendCapacity(backend: replica.backend.id, source: replica.capacity.source.rawValue, replica.capacity.limit)
                    }
                }
            }
        }
    }
}

/// A learned window moved: growth is routine (debug), a shrink says the engine queued or could
/// not take connections (info).
extension ModelPool {
    func report(_ change: LearnedWindow.Change, backend: String, logger: Logger) {
        switch change {
        case .grew(let from, let to):
            logger.debug("learned capacity grew", metadata: ["model": "\(name)", "backend": "\(backend)", "from": "\(from)", "to": "\(to)"])
        case .shrank(let from, let to, let reason):
            logger.info(
                "learned capacity shrank",
                metadata: [
                    "model": "\(name)", "backend": "\(backend)", "from": "\(from)", "to": "\(to)",
                    "reason": "\(reason)",
                ])
        }
    }
}
