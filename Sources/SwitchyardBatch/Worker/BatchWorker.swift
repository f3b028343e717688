import Foundation
import Logging
import ServiceLifecycle
import SwitchyardCore
import Synchronization

/// Where a batch item is sent: the gateway, through its batch lane (so it yields to live
/// traffic and is preempted like other batch work).
package protocol BatchExecutor: Sendable {
    /// Sends one item; `status` nil when no HTTP answer came.
    func executeBatchItem(endpoint: String, body: [UInt8], tenant: String, requestID: String) async -> (status: Int?, body: [UInt8])
    /// Items worth keeping in flight (waiting in the batch lane included).
    var batchItemSlots: Int { get }
    /// The batch lane's retry policy: attempts per item and the pause before a retry.
    var batchRetry: (maxAttempts: Int, backoff: Duration) { get }
    /// Shutdown began: claim nothing new.
    var isDraining: Bool { get }
}

/// Claims items with leases and runs them through the ``BatchExecutor``; moves batches through
/// their statuses (``BatchLifecycle``); renews its leases while items run and reclaims lapsed
/// ones. Several gateways on one PostgreSQL each run one; SQLite has exactly one.
package final class BatchWorker: Service, Sendable {
    let service: BatchService
    let executor: any BatchExecutor
    let logger: Logger
    /// This worker's lease owner name.
    package let owner: String
    private let inflight = Mutex<[String: ClaimedItem]>([:])
    private let stopping = Atomic<Bool>(false)
    /// The store's failures in the claim loop, logged once, then every 30 s, then when they clear.
    private let storeFailures = RepeatedFailure()

    package init(service: BatchService, executor: any BatchExecutor, logger: Logger) {
        self.service = service
        self.executor = executor
        self.logger = logger
        var host = [CChar](repeating: 0, count: 256)
        gethostname(&host, 255)
        owner = "\(String(cString: host))-\(getpid())-\(BatchIDs.random(6))"
    }

    var store: BatchStore { service.store }
    var leaseMs: Int64 { Int64(service.config.lease.components.seconds * 1000) }

    package func run() async throws {
        if store.db.dialect == .sqlite {
            // The only worker on this file (it is locked): what a previous process held is free.
            let released = try await store.releaseAll()
            if released > 0 { logger.info("batch items from before a restart are pending again", metadata: ["items": "\(released)"]) }
        }
        await withGracefulShutdownHandler {
            await withDiscardingTaskGroup { group in
                var lastRenew = ContinuousClock.now
                var lastLifecycle = ContinuousClock.now - .seconds(10)
                // Shutdown began (readiness off): nothing new is claimed, but the worker runs on
                // until the service group shuts it down (returning early would fail the group).
                while !stopping.load(ordering: .relaxed), !Task.isCancelled {
                    if executor.isDraining {
                        await service.wake.wait(timeout: .milliseconds(500))
                        continue
                    }
                    do {
                        if ContinuousClock.now - lastLifecycle >= .milliseconds(500) {
                            try await lifecycle()
                            lastLifecycle = ContinuousClock.now
                        }
                        if ContinuousClock.now - lastRenew >= service.config.lease / 3 {
                            try await renew()
                            lastRenew = ContinuousClock.now
                        }
                        let free = executor.batchItemSlots - inflight.withLock { $0.count }
                        if free > 0 {
                            let now = WallClock.unixMilliseconds()
                            let items = try await store.claim(owner: owner, limit: free, now: now, leaseUntil: now + leaseMs)
                            storeAnswered()
                            for item in items {
                                inflight.withLock { $0[key(item)] = item }
                                group.addTask { [self] in
                                    await process(item)
                                    _ = inflight.withLock { $0.removeValue(forKey: key(item)) }
                                    service.wake.ring()
                                }
                            }
                            if items.count == free { continue }
                        } else {
                            storeAnswered()
                        }
                    } catch {
                        // Once, then a reminder every 30 s (it is retried every 500 ms).
                        switch storeFailures.failed() {
                        case .first: logger.error("batch worker: store error; retrying", metadata: ["error": "\(error)"])
                        case .still(let n, let seconds):
                            logger.error(
                                "batch worker: store still failing",
                                metadata: ["error": "\(error)", "for_s": "\(Int(seconds))", "errors_not_logged": "\(n)"])
                        case .recovered, nil: break
                        }
                    }
                    await service.wake.wait(timeout: .milliseconds(500))
                }
            }
            // Leases of items that did not finish go back at once rather than lapsing.
            try? await store.release(owner: owner)
        } onGracefulShutdown: { [self] in
            stopping.store(true, ordering: .relaxed)
            service.wake.ring()
        }
    }

    /// The store answered: says so once after a run of failures.
    func storeAnswered() {
        if case .recovered(let failures, let seconds) = storeFailures.succeeded() {
            logger.notice("batch worker: store reachable again", metadata: ["errors": "\(failures)", "after_s": "\(Int(seconds))"])
        }
    }

    func key(_ item: ClaimedItem) -> String { "\(item.batchID)/\(item.line)" }

    /// Moves every active batch on: start, finalize, expire, finish a cancel; reclaims lapsed
    /// leases and refreshes the item gauges.
    func lifecycle() async throws {
        let reclaimed = try await store.reclaimExpired(now: WallClock.unixMilliseconds())
        if reclaimed > 0 {
            service.metrics.leaseReclaims.add(reclaimed, ordering: .relaxed)
            logger.warning("reclaimed lapsed batch item leases", metadata: ["items": "\(reclaimed)"])
        }
        for batch in try await store.activeBatches() {
            let counts = try await store.counts(batch.id)
            let now = WallClock.unixSeconds()
            switch BatchLifecycle.step(batch.status, counts: counts, now: now, expiresAt: batch.expiresAt) {
            case .start:
                if try await store.transition(batch.id, from: [.validating], to: .inProgress, at: now) {
                    logger.info("batch in progress", metadata: ["batch": "\(batch.id)", "requests": "\(batch.total)"])
                }
            case .finalize:
                try await store.transition(batch.id, from: [.inProgress], to: .finalizing, at: now)
                if try await finish(batch, as: .completed, from: [.finalizing]) {
                    logger.info(
                        "batch completed", metadata: ["batch": "\(batch.id)", "completed": "\(counts.done)", "failed": "\(counts.failed)"])
                }
            case .expire:
                try await store.failOpenItems(
                    batch.id,
                    error: ("batch_expired", "This request could not be executed before the completion window (\(batch.completionWindow)) expired."),
                    at: WallClock.unixMilliseconds())
                if try await finish(batch, as: .expired, from: [.inProgress, .finalizing]) {
                    logger.warning("batch expired", metadata: ["batch": "\(batch.id)", "completed": "\(counts.done)", "open": "\(counts.open)"])
                }
            case .finishCancel:
                if try await finish(batch, as: .cancelled, from: [.cancelling]) {
                    logger.info("batch cancelled", metadata: ["batch": "\(batch.id)", "completed": "\(counts.done)"])
                }
            case .wait:
                break
            }
        }
        service.metrics.setGauges(try await store.activeCounts())
    }

    /// True when this gateway ended the batch (another may have been first).
    private func finish(_ batch: StoredBatch, as status: BatchStatus, from: [BatchStatus]) async throws -> Bool {
        do {
            return try await store.finish(batch, as: status, from: from, at: WallClock.unixSeconds())
        } catch is BatchStore.Conflict {
            return false
        }
    }

    func renew() async throws {
        let held = inflight.withLock { Array($0.values) }
        try await store.renew(owner: owner, items: held.map { ($0.batchID, $0.line) }, until: WallClock.unixMilliseconds() + leaseMs)
    }

    /// One attempt at one item, and what it leaves in the store.
    func process(_ item: ClaimedItem) async {
        let started = ContinuousClock.now
        let requestID = "\(item.batchID)-\(item.line)-\(item.attempts)"
        let line = (try? JSONParser.parse(item.data)) ?? .null
        let body = line["body"].map { $0.serialized() } ?? []
        let (status, answer) = await executor.executeBatchItem(endpoint: item.endpoint, body: body, tenant: item.tenant, requestID: requestID)
        let retry = executor.batchRetry
        let outcome = BatchLifecycle.outcome(status: status, attempts: item.attempts, maxAttempts: retry.maxAttempts, backoff: retry.backoff)
        let now = WallClock.unixMilliseconds()
        do {
            switch outcome {
            case .done, .failed:
                let text: String
                if let status {
                    let parsed = (try? JSONParser.parse(answer)) ?? .string(String(decoding: answer, as: UTF8.self))
                    text = BatchOutput.line(customID: item.customID, status: status, requestID: requestID, body: parsed)
                } else {
                    text = BatchOutput.errorLine(
                        customID: item.customID, code: "upstream_unavailable",
                        message: "No answer after \(item.attempts) attempts: \(String(decoding: answer.prefix(300), as: UTF8.self))")
                }
                let written = try await store.finishItem(item, owner: owner, failed: outcome == .failed, result: text, now: now)
                if written {
                    service.metrics.finished(failed: outcome == .failed, seconds: (ContinuousClock.now - started).seconds)
                } else {
                    logger.warning(
                        "batch item answered after its lease was lost; the answer is dropped",
                        metadata: ["batch": "\(item.batchID)", "custom_id": "\(item.customID)"])
                }
            case .retry(let after):
                service.metrics.retried.add(1, ordering: .relaxed)
                logger.info(
                    "batch item will be retried",
                    metadata: [
                        "batch": "\(item.batchID)", "custom_id": "\(item.customID)", "status": "\(status.map(String.init) ?? "none")",
                        "attempt": "\(item.attempts)", "after": "\(after.formatted)",
                    ])
                try await store.retryItem(item, owner: owner, at: now + Int64(after.seconds * 1000))
            }
        } catch {
            logger.error("batch item result not stored; its lease lapses and it runs again", metadata: ["error": "\(error)"])
        }
    }
}

/// The batch metrics, rendered into the gateway's `/metrics`.
package final class BatchMetrics: Sendable {
    let done = Atomic<Int>(0)
    let failed = Atomic<Int>(0)
    let retried = Atomic<Int>(0)
    let leaseReclaims = Atomic<Int>(0)
    private let gauges = Mutex(ItemCounts())
    /// Item latency histogram (seconds): bucket bounds and counts, sum.
    static let bounds: [Double] = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300]
    private let latency = Mutex<(counts: [Int], sum: Double)>((Array(repeating: 0, count: 13), 0))

    package init() {}

    func finished(failed isFailure: Bool, seconds: Double) {
        if isFailure { failed.add(1, ordering: .relaxed) } else { done.add(1, ordering: .relaxed) }
        latency.withLock { h in
            h.counts[Self.bounds.firstIndex { seconds <= $0 } ?? Self.bounds.count] += 1
            h.sum += seconds
        }
    }

    func setGauges(_ counts: ItemCounts) { gauges.withLock { $0 = counts } }

    /// Prometheus text.
    package func render(lane: String) -> String {
        let g = gauges.withLock { $0 }
        var out = "# HELP switchyard_batch_items Items of batches still being worked on, by state.\n# TYPE switchyard_batch_items gauge\n"
        for (state, n) in [("pending", g.pending), ("in_progress", g.claimed), ("done", g.done), ("failed", g.failed)] {
            out += "switchyard_batch_items{lane=\"\(lane)\",state=\"\(state)\"} \(n)\n"
        }
        out += "# HELP switchyard_batch_items_total Batch items this gateway finished, by outcome (retried: attempts to be repeated).\n"
        out += "# TYPE switchyard_batch_items_total counter\n"
        for (status, n) in [
            ("completed", done.load(ordering: .relaxed)), ("failed", failed.load(ordering: .relaxed)), ("retried", retried.load(ordering: .relaxed)),
        ] {
            out += "switchyard_batch_items_total{status=\"\(status)\"} \(n)\n"
        }
        out += "# HELP switchyard_batch_lease_reclaims_total Item leases that lapsed and were taken back.\n"
        out +=
            "# TYPE switchyard_batch_lease_reclaims_total counter\nswitchyard_batch_lease_reclaims_total \(leaseReclaims.load(ordering: .relaxed))\n"
        let h = latency.withLock { $0 }
        out += "# HELP switchyard_batch_item_seconds Time from sending a batch item to its answer.\n# TYPE switchyard_batch_item_seconds histogram\n"
        var cumulative = 0
        for (i, bound) in Self.bounds.enumerated() {
            cumulative += h.counts[i]
            out += "switchyard_batch_item_seconds_bucket{lane=\"\(lane)\",le=\"\(bound)\"} \(cumulative)\n"
        }
        cumulative += h.counts[Self.bounds.count]
        out += "switchyard_batch_item_seconds_bucket{lane=\"\(lane)\",le=\"+Inf\"} \(cumulative)\n"
        out += "switchyard_batch_item_seconds_sum{lane=\"\(lane)\"} \(h.sum)\nswitchyard_batch_item_seconds_count{lane=\"\(lane)\"} \(cumulative)\n"
        return out
    }
}
