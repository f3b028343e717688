import Hummingbird
import Logging
import SwitchyardCore

/// SLO accounting, metrics and the access log of the proxy.
extension Proxy {
    /// `switchyard_slo_total`: every SLO of the lane, met or missed. A request refused or failed
    /// by the gateway or the backend misses them all; one whose client left counts for none.
    func recordSLOs(_ record: Record, total: Duration) {
        guard let lane = config.lane(named: record.request.lane), record.status != 499 else { return }
        let slo = lane.slo
        let failed = record.status >= 400 || record.error != nil
        func count(_ name: String, _ limit: Duration?, _ value: Duration?) {
            guard let limit else { return }
            if failed {
                metrics.slo(lane: lane.name, slo: name, met: false)
            } else if let value {
                metrics.slo(lane: lane.name, slo: name, met: value <= limit)
            }
        }
        // Without a stream, the first token arrives with the whole answer.
        let ttft = record.tokens.first.map { $0 - record.start } ?? (record.request.stream ? nil : total)
        count("ttft", slo.ttft, ttft)
        count("tpot", slo.tpot, record.tokens.tpot(completionTokens: record.completionTokens))
        count("e2e", slo.e2e, total)
        count("max_stall", slo.maxStall, record.tokens.maxGap ?? (record.tokens.first != nil ? .zero : nil))
    }

    /// Metrics and the one access-log line per request.
    func log(_ record: Record, logger: Logger) {
        let end = ContinuousClock.now
        let total = (end - record.start).seconds
        let lane = record.request.lane
        if let inputs = record.request.coalescedInputs {
            // Its members are counted and logged one by one.
            logger.debug(
                "coalesced embeddings request",
                metadata: [
                    "request_id": "\(record.request.id)", "inputs": "\(inputs)", "status": "\(record.status)",
                    "backend": "\(record.backend ?? "-")", "total_ms": "\(Int((total * 1000).rounded()))",
                ])
            return
        }
        metrics.requestFinished(model: record.request.model, lane: lane, code: record.status, duration: total)
        if record.request.streamSlot { streams.release(record.request.tenant) }
        if let grant = record.request.quota {
            // What the answer really used replaces the charge (a failed request uses nothing).
            let used = record.status < 400 ? (record.promptTokens ?? 0) + (record.completionTokens ?? 0) : 0
            quotas?.reconcile(grant, usedTokens: used)
        }
        var ttftMs: String = "-"
        if let first = record.tokens.first {
            let ttft = (first - record.start).seconds
            metrics.ttft(model: record.request.model, lane: lane, seconds: ttft)
            ttftMs = String(Int((ttft * 1000).rounded()))
            if let tpot = record.tokens.tpot(completionTokens: record.completionTokens) {
                metrics.tpot(model: record.request.model, lane: lane, seconds: tpot.seconds)
            }
        }
        recordSLOs(record, total: end - record.start)
        if let n = record.completionTokens, n > 0 {
            metrics.outputTokens(model: record.request.model, n)
            metrics.tenantTokens(tenant: record.request.tenant, kind: "output", n)
        }
        if let n = record.promptTokens, n > 0 { metrics.tenantTokens(tenant: record.request.tenant, kind: "input", n) }
        guard logger.logLevel <= .info else { return }
        let hops = record.hops.parts(start: record.start, queue: record.queueWait, now: end)
        var metadata: Logger.Metadata = [
            "request_id": "\(record.request.id)",
            "tenant": "\(record.request.tenant)",
            "model": "\(record.request.model)",
            "lane": "\(lane)",
            "backend": "\(record.backend ?? "-")",
            "route": "\(record.route ?? "-")",
            "status": "\(record.status)",
            "attempts": "\(record.attempts)",
            "preemptions": "\(record.preemptions)",
            "queue_ms": "\(Int((record.queueWait.seconds * 1000).rounded()))",
            "connect_ms": "\(hops.connect.map(HopTiming.ms) ?? "-")",
            "ttfb_ms": "\(hops.ttfb.map(HopTiming.ms) ?? "-")",
            "upstream_ms": "\(hops.upstream.map(HopTiming.ms) ?? "-")",
            "gateway_ms": "\(HopTiming.ms(hops.gateway))",
            "ttft_ms": "\(ttftMs)",
            "total_ms": "\(Int((total * 1000).rounded()))",
            "prompt_tokens": "\(record.promptTokens.map(String.init) ?? "-")",
            "completion_tokens": "\(record.completionTokens.map(String.init) ?? "-")",
        ]
        if record.model != record.request.model { metadata["served_by_model"] = "\(record.model)" }
        if let error = record.error { metadata["error"] = "\(error)" }
        logger.info("request", metadata: metadata)
    }
}
