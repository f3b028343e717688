import Logging
import NIOCore
import ServiceLifecycle
import SwitchyardCore
import SwitchyardScheduling

/// Asks every backend without a configured `max_inflight` how many requests it runs at once, at
/// start, whenever it comes back healthy and when it registers: llama.cpp `/props`, SGLang
/// `/get_server_info`, TGI `/info`; failing those, a waiting-queue metric in `/metrics` lets the
/// pool learn the window (vLLM); failing that, `upstream.default_max_inflight` applies and the
/// log says so. Each request has its own short timeout, so an odd or hanging backend never holds
/// up start or serving: it just ends up learned or at the default.
struct CapacityDiscovery: Service {
    struct Target: Sendable {
        let pool: ModelPool
        let index: Int
        /// Ask its capacity (false: only its batching check, if undecided).
        var capacity = true
    }

    let pools: [ModelPool]
    let client: UpstreamClient
    let timeout: Duration
    let logger: Logger
    let requests: AsyncStream<Target>
    /// Fired once every backend was asked at start (whatever the answers).
    let startRoundDone: OneShotSignal
    /// Run beside discovery for models that merge embeddings requests.
    let batching: BatchingCheck

    func run() async throws {
        await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                for pool in pools {
                    for (index, _) in pool.discoverable() { group.addTask { await discover(pool, index) } }
                    if pool.coalesces {
                        for replica in pool.snapshot() { group.addTask { await batching.check(pool, replica.index) } }
                    }
                }
            }
            startRoundDone.fire()
            await withDiscardingTaskGroup { group in
                for await target in requests {
                    group.addTask {
                        if target.capacity { await discover(target.pool, target.index) }
                        await batching.check(target.pool, target.index)
                    }
                }
            }
        }
    }

    /// Discovers one replica's capacity and puts it in force. An unreachable backend is left as
    /// it is: it is asked again when it passes a health check.
    func discover(_ pool: ModelPool, _ index: Int) async {
        guard let backend = pool.discoverable().first(where: { $0.index == index })?.backend else { return }
        let origin = backend.url.origin
        var notes: [String] = []
        for (path, source) in EngineCapacity.endpoints {
            do {
                let (status, body) = try await client.get(origin + path, timeout: timeout, close: true)
                guard status == 200 else {
                    notes.append("\(path) answered \(status)")
                    continue
                }
                switch EngineCapacity.parse(body.readableBytesView, source: source) {
                case .success(let engine):
                    apply(pool, index, backend, .engine(engine), notes: notes)
                    return
                case .failure(let unusable):
                    notes.append("\(path): \(unusable)")
                }
            } catch {
                if UpstreamFailure.kind(of: error) == .connect {
                    logger.debug(
                        "capacity discovery: backend unreachable; asking again once it is healthy",
                        metadata: ["model": "\(pool.name)", "backend": "\(backend.id)", "error": "\(error)"])
                    return
                }
                notes.append("\(path): \(error)")
            }
        }
        do {
            let (status, body) = try await client.get(origin + "/metrics", timeout: timeout, close: true)
            if status == 200, BackendSignals.parse(String(buffer: body), scrapedAt: pool.clock).waiting != nil {
                apply(pool, index, backend, .learn, notes: notes)
                return
            }
            notes.append(status == 200 ? "/metrics has no waiting-queue metric" : "/metrics answered \(status)")
        } catch {
            notes.append("/metrics: \(error)")
        }
        apply(pool, index, backend, .unknown, notes: notes)
    }

    func apply(_ pool: ModelPool, _ index: Int, _ backend: Backend, _ found: ModelPool.Discovered, notes: [String]) {
        // switchyard_backend_capacity follows from the pool (PoolTicker), like every window change.
        guard let (before, after) = pool.applyCapacity(index, found), before != after else { return }
        var metadata: Logger.Metadata = ["model": "\(pool.name)", "backend": "\(backend.id)", "source": "\(after.source.rawValue)"]
        switch found {
        case .engine(let engine):
            metadata["capacity"] = "\(engine.slots)"
            if let tokens = engine.tokens { metadata["tokens"] = "\(tokens)" }
            logger.info("backend capacity discovered: \(engine.slots) requests at once (\(after.source.explanation))", metadata: metadata)
        case .learn:
            metadata["window"] = "\(after.limit)"
            logger.info(
                "backend capacity will be learned from its waiting queue in /metrics, starting at \(after.limit) requests at once",
                metadata: metadata)
        case .unknown:
            metadata["capacity"] = "\(after.limit)"
            metadata["tried"] = "\(notes.joined(separator: "; "))"
            logger.warning(
                "backend reports neither its capacity nor a waiting queue: at most \(after.limit) requests at once (upstream.default_max_inflight), fewer after connect timeouts; set max_inflight to its batch size",
                metadata: metadata)
        }
    }
}
