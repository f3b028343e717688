import Logging
import ServiceLifecycle
import SwitchyardCore
import SwitchyardScheduling

/// The clock of the lane schedulers. Each pool's loop sleeps until the deadline its last tick
/// returned (a queue deadline, a total timeout, a preemption check, a cooldown's end, a window's
/// next look), or until the pool rings its doorbell because something sooner came up; and looks
/// at least every `metricsEvery` to publish queue depths, windows and capacity. No fixed-rate
/// polling: an idle pool wakes only for its metrics.
struct PoolTicker: Service {
    let pools: [ModelPool]
    let metrics: GatewayMetrics
    let logger: Logger
    var metricsEvery: Duration = .milliseconds(250)

    func run() async throws {
        await cancelWhenGracefulShutdown {
            await withTaskGroup(of: Void.self) { group in
                for pool in pools {
                    group.addTask { await loop(pool) }
                }
            }
        }
    }

    private func loop(_ pool: ModelPool) async {
        var nextMetrics = ContinuousClock.now + metricsEvery
        while !Task.isCancelled {
            let report = pool.tick()
            for (backend, change) in report.capacityChanges { pool.report(change, backend: backend, logger: logger) }
            let now = ContinuousClock.now
            if now >= nextMetrics {
                nextMetrics = now + metricsEvery
                for (lane, depth) in report.queueDepth { metrics.queueDepth(model: pool.name, lane: lane, depth) }
                for (backend, window) in report.windows { metrics.backendWindow(backend: backend, window) }
                for replica in pool.snapshot() {
                    metrics.backendCapacity(backend: replica.backend.id, source: replica.capacity.source.rawValue, replica.capacity.limit)
                }
            }
            let wake = min(report.next ?? nextMetrics, nextMetrics)
            await pool.doorbell.wait(timeout: max(.zero, wake - .now))
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
