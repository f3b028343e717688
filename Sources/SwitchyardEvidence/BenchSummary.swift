import Foundation
import SwitchyardCore

/// Per-request SLO thresholds for goodput (a request is good when it succeeded and meets each).
package struct RequestSLO: Sendable, Equatable {
    package var ttft: Double?
    package var tpot: Double?
    package var e2e: Double?
    package var maxStall: Double?
    package init(ttft: Double? = nil, tpot: Double? = nil, e2e: Double? = nil, maxStall: Double? = nil) {
        self.ttft = ttft
        self.tpot = tpot
        self.e2e = e2e
        self.maxStall = maxStall
    }

    package var isEmpty: Bool { ttft == nil && tpot == nil && e2e == nil && maxStall == nil }

    /// Measured from the schedule (TTFT_sched), so a late client cannot hide queueing.
    package func met(by r: RequestRecord) -> Bool {
        guard r.succeeded else { return false }
        if let ttft, (r.ttftSched ?? .infinity) > ttft { return false }
        if let tpot, let v = r.tpot, v > tpot { return false }
        if let e2e, (r.e2eSched ?? .infinity) > e2e { return false }
        if let maxStall, let v = r.maxGap, v > maxStall { return false }
        return true
    }
}

/// The statistics of one lane over its measurement window (reference/metrics.md).
package struct LaneSummary: Sendable {
    package var lane: String
    /// Seconds from the end of warmup to the last measured request's end.
    package var window: Double
    package var offeredRate: Double?
    package var scheduled: Int
    package var sent: Int
    package var succeeded: Int
    package var failed: Int
    package var sendRate: Double
    package var requestThroughput: Double
    package var outputTokenThroughput: Double
    package var goodput: Double?
    package var attainment: Double?
    package var tokenMismatches: Int
    /// Requests sent a second time after a reused connection was lost before any answer.
    package var resent = 0
    package var metrics: [(name: String, summary: MetricSummary)]
    /// Problems that make the numbers unfit for a verdict.
    package var invalid: [String]
    /// Up to five distinct error messages with their counts.
    package var errors: [(message: String, count: Int)]

    package static let metricNames = ["ttft", "ttft_sched", "e2e", "e2e_sched", "tpot", "itl", "stall", "schedule_lag"]

    package func metric(_ name: String) -> MetricSummary? { metrics.first { $0.name == name }?.summary }

    /// - Parameter minimumWindow: the scheduled length (a sparse open-loop run must not look
    ///   faster than its schedule).
    package static func compute(
        lane: String, records all: [RequestRecord], offeredRate: Double?, slo: RequestSLO = RequestSLO(),
        lagBound: Double = 0.05, minimumWindow: Double? = nil
    ) -> LaneSummary {
        let records = all.filter { !$0.warmup }
        let start = records.map(\.tSched).min() ?? .zero
        let end = records.compactMap { $0.tLast ?? $0.tSend }.max() ?? start
        let window = max(1e-9, (end - start).seconds, minimumWindow ?? 0)
        let ok = records.filter(\.succeeded)
        // Achieved against offered on the same requests: a Poisson sample's own rate is the
        // offered one, so only a client falling behind its schedule lowers the ratio.
        let sends = records.compactMap(\.tSend)
        let sendSpan = max(1e-9, ((sends.max() ?? start) - (sends.min() ?? start)).seconds)
        let schedSpan = max(1e-9, ((records.map(\.tSched).max() ?? start) - start).seconds)
        var summary = LaneSummary(
            lane: lane, window: window, offeredRate: offeredRate, scheduled: records.count, sent: records.filter { $0.tSend != nil }.count,
            succeeded: ok.count, failed: records.count - ok.count,
            sendRate: sends.count > 1 ? Double(sends.count - 1) / sendSpan : Double(sends.count),
            requestThroughput: Double(ok.count) / window,
            outputTokenThroughput: Double(ok.reduce(0) { $0 + ($1.outputTokensServer ?? $1.outputTokensClient) }) / window,
            goodput: nil, attainment: nil, tokenMismatches: ok.filter(\.tokenMismatch).count, metrics: [], invalid: [], errors: [])
        summary.resent = records.filter(\.resent).count
        if !slo.isEmpty {
            let good = records.filter { slo.met(by: $0) }.count
            summary.goodput = Double(good) / window
            summary.attainment = records.isEmpty ? nil : Double(good) / Double(records.count)
        }
        let series: [(String, [Double])] = [
            ("ttft", ok.compactMap(\.ttft)), ("ttft_sched", ok.compactMap(\.ttftSched)),
            ("e2e", ok.compactMap(\.e2e)), ("e2e_sched", ok.compactMap(\.e2eSched)),
            ("tpot", ok.compactMap(\.tpot)), ("itl", ok.flatMap(\.gaps)), ("stall", ok.compactMap(\.maxGap)),
            ("schedule_lag", records.compactMap(\.scheduleLag)),
        ]
        summary.metrics = series.compactMap { name, values in MetricSummary(values).map { (name, $0) } }
        let scheduledRate = records.count > 1 ? Double(records.count - 1) / schedSpan : summary.sendRate
        if offeredRate != nil, records.count > 10, summary.sendRate < 0.95 * scheduledRate {
            summary.invalid.append(
                String(
                    format: "sent %.2f req/s, below 95%% of the %.2f req/s the schedule offered: the client could not keep up",
                    summary.sendRate, scheduledRate))
        }
        if let lag = summary.metric("schedule_lag"), lag.p99 > lagBound {
            summary.invalid.append(String(format: "schedule lag p99 %.1f ms is over the %.1f ms bound", lag.p99 * 1000, lagBound * 1000))
        }
        if !ok.isEmpty, Double(summary.tokenMismatches) / Double(ok.count) > 0.05 {
            summary.invalid.append("server and client token counts disagree on \(summary.tokenMismatches) of \(ok.count) requests")
        }
        var counts: [String: Int] = [:]
        for r in records { if let e = r.error { counts[String(e.prefix(160)), default: 0] += 1 } }
        summary.errors = counts.sorted { $0.value > $1.value }.prefix(5).map { ($0.key, $0.value) }
        return summary
    }

    package var json: JSONValue {
        func num(_ v: Double?) -> JSONValue { v.map { .number(String(format: "%.6g", $0)) } ?? .null }
        var fields: [(String, JSONValue)] = [
            ("lane", .string(lane)), ("window_s", num(window)), ("offered_rate", num(offeredRate)), ("scheduled", .number(scheduled)),
            ("sent", .number(sent)), ("succeeded", .number(succeeded)), ("failed", .number(failed)), ("send_rate", num(sendRate)),
            ("request_throughput", num(requestThroughput)), ("output_token_throughput", num(outputTokenThroughput)),
            ("goodput", num(goodput)), ("attainment", num(attainment)), ("token_mismatches", .number(tokenMismatches)),
            ("resent", .number(resent)),
        ]
        fields.append(
            (
                "metrics",
                .object(
                    metrics.map { name, m in
                        (
                            name,
                            .object([
                                ("n", .number(m.n)), ("min", num(m.min)), ("mean", num(m.mean)), ("p50", num(m.p50)), ("p90", num(m.p90)),
                                ("p95", num(m.p95)), ("p99", num(m.p99)), ("p99.9", num(m.p999)), ("max", num(m.max)),
                            ])
                        )
                    })
            ))
        fields.append(("valid", .bool(invalid.isEmpty)))
        fields.append(("invalid_reasons", .array(invalid.map(JSONValue.string))))
        fields.append(("errors", .array(errors.map { .object([("message", .string($0.message)), ("count", .number($0.count))]) })))
        return .object(fields)
    }
}
