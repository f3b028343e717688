import Foundation
import SwitchyardCore

/// A plan or a what-if run as a table, Markdown or JSON (the HTML page is drawn by the CLI with
/// the evidence reports' charts).
package enum PlanReport {
    package static func ms(_ seconds: Double) -> String { String(format: "%.0f ms", seconds * 1000) }
    static func money(_ v: Double?) -> String { v.map { String(format: "$%.4g", $0) } ?? "-" }

    /// Per lane: offered, completed, SLO attainment against its target, TTFT p50/p99, shed, preempted.
    package static func laneRows(_ r: SimulationResult) -> [[String]] {
        r.lanes.map { l in
            [
                l.lane, "\(l.offered)", "\(l.completed)",
                l.slo.isEmpty ? "no SLO" : String(format: "%.2f%% (target %.2f%%)", l.attainment * 100, l.target * 100),
                ms(l.ttft.quantile(0.5)), ms(l.ttft.quantile(0.99)), ms(l.e2e.quantile(0.99)), ms(l.meanQueueWait),
                l.shedTotal == 0
                    ? "0" : "\(l.shedTotal) (" + l.shed.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ") + ")",
                "\(l.preempted)", l.meetsTarget ? "meets" : "misses",
            ]
        }
    }

    package static let laneHeader = [
        "lane", "offered", "completed", "SLO attainment", "TTFT p50", "TTFT p99", "E2E p99", "queue wait", "shed", "preempted", "",
    ]

    package static func table(_ header: [String], _ rows: [[String]]) -> String {
        let widths = header.indices.map { i in ([header[i]] + rows.map { $0[i] }).map(\.count).max() ?? 0 }
        func line(_ cells: [String]) -> String {
            var text = zip(cells, widths).map { $0.padding(toLength: $1, withPad: " ", startingAt: 0) }.joined(separator: "  ")
            while text.last == " " { text.removeLast() }
            return text
        }
        return ([line(header)] + rows.map(line)).joined(separator: "\n")
    }

    package static func markdownTable(_ header: [String], _ rows: [[String]]) -> String {
        let esc = { (s: String) in s.replacingOccurrences(of: "|", with: "\\|") }
        return
            (["| " + header.map(esc).joined(separator: " | ") + " |", "|" + header.map { _ in " --- |" }.joined()]
            + rows.map { "| " + $0.map(esc).joined(separator: " | ") + " |" }).joined(separator: "\n")
    }

    package static func profileRows(_ p: ReplicaProfile) -> [[String]] {
        var rows: [[String]] = [
            ["slots", String(format: "%.0f", p.slots.value), p.slots.source],
            ["TTFT base", ms(p.ttftBase.value), p.ttftBase.source],
            [
                "prefill", p.ttftPerPromptToken.value > 0 ? String(format: "%.0f tokens/s", 1 / p.ttftPerPromptToken.value) : "in the base",
                p.ttftPerPromptToken.source,
            ],
            ["TTFT per request in flight", String(format: "%.2f ms", p.ttftPerConcurrent.value * 1000), p.ttftPerConcurrent.source],
            ["TPOT alone", String(format: "%.1f ms", p.tpotBase.value * 1000), p.tpotBase.source],
            ["TPOT per request in flight", String(format: "%.2f ms", p.tpotPerConcurrent.value * 1000), p.tpotPerConcurrent.source],
        ]
        if let kv = p.kvTokens { rows.append(["KV cache", String(format: "%.0f tokens", kv.value), kv.source]) }
        return rows
    }

    /// The plan's summary lines, as (label, value) pairs.
    package static func summary(_ plan: Planner.Plan) -> [(String, String)] {
        let e = PlanEconomics(plan: plan)
        guard let replicas = plan.replicas, let peak = plan.peak else {
            return [("replicas", plan.unreachable ?? "none of the counts tried met every lane's target")]
        }
        var out: [(String, String)] = [
            ("replicas", "\(replicas)" + (plan.profile.gpusPerReplica > 0 ? " (\(e.units) GPUs)" : "")),
            ("utilization at peak", String(format: "%.0f%% of slots", e.utilizationAtPeak * 100)),
            ("utilization over the day", String(format: "%.0f%%", e.dayUtilization * 100)),
            (
                "headroom at peak",
                plan.headroom.map { String(format: "the peak may grow %.0f%% before a lane misses its target", ($0 - 1) * 100) } ?? "-"
            ),
            ("goodput per \(e.unit)-hour", String(format: "%.0f requests that met their SLO", e.goodputPerUnitHour)),
            ("output tokens per \(e.unit)-hour", String(format: "%.0f (raw)", e.tokensPerUnitHour)),
        ]
        if let cost = e.costPerHour {
            out += [
                ("cost per hour", money(cost)), ("cost per million output tokens", money(e.costPerMillionTokens)),
                ("cost per 1,000 requests", money(e.costPerThousandRequests)),
            ]
        } else {
            out.append(("cost", "give price_per_\(e.unit == "GPU" ? "gpu" : "replica")_hour in the demand"))
        }
        out.append(("simulated", String(format: "%.0f s at the peak, %d events, seed %llu", peak.span, peak.events, plan.seed)))
        return out
    }

    package static let sweepHeader = ["replicas", "attainment", "utilization", ""]

    /// One row per replica count tried: each lane's attainment, utilization, and whether it
    /// meets every target (the cheapest that does is marked).
    package static func sweepRows(_ results: [SimulationResult], cheapest: Int?) -> [[String]] {
        results.map { r in
            [
                "\(r.replicas)", r.lanes.map { String(format: "%@ %.2f%%", $0.lane, $0.attainment * 100) }.joined(separator: ", "),
                String(format: "%.0f%%", r.utilization * 100),
                r.meetsEveryTarget ? (r.replicas == cheapest ? "meets ← cheapest" : "meets") : "misses",
            ]
        }
    }

    package static func text(_ plan: Planner.Plan, markdown: Bool) -> String {
        let t = markdown ? markdownTable : table
        var out = markdown ? "# Capacity plan: \(plan.profile.name)\n\n" : "capacity plan: \(plan.profile.name)\n\n"
        out += t(["", ""], summary(plan).map { [$0.0, $0.1] }) + "\n\n"
        if let peak = plan.peak { out += (markdown ? "## Lanes at the peak\n\n" : "lanes at the peak\n") + t(laneHeader, laneRows(peak)) + "\n\n" }
        out +=
            (markdown ? "## Replicas tried\n\n" : "replicas tried\n") + t(sweepHeader, sweepRows(plan.points.map(\.result), cheapest: plan.replicas))
            + "\n\n"
        out += (markdown ? "## Replica profile\n\n" : "replica profile\n") + t(["", "value", "source"], profileRows(plan.profile)) + "\n"
        for note in plan.profile.notes { out += (markdown ? "- " : "  ") + note + "\n" }
        return out
    }

    static func num(_ v: Double, _ digits: Int = 4) -> JSONValue { .number(String(format: "%.\(digits)f", v)) }

    package static func laneJSON(_ l: SimulationResult.Lane) -> JSONValue {
        .object([
            ("lane", .string(l.lane)), ("offered", .number(l.offered)), ("completed", .number(l.completed)), ("met", .number(l.met)),
            ("attainment", num(l.attainment)), ("target", num(l.target)), ("meets", .bool(l.meetsTarget)),
            ("ttft_p50", num(l.ttft.quantile(0.5))), ("ttft_p99", num(l.ttft.quantile(0.99))), ("e2e_p50", num(l.e2e.quantile(0.5))),
            ("e2e_p99", num(l.e2e.quantile(0.99))), ("tpot_p50", num(l.tpot.quantile(0.5))), ("mean_queue_wait", num(l.meanQueueWait, 6)),
            ("shed", .object(l.shed.sorted { $0.key < $1.key }.map { ($0.key, .number($0.value)) })), ("preempted", .number(l.preempted)),
            ("output_tokens", .number(l.outputTokens)), ("queue_depth", .array(l.queueDepth.map { .number($0) })),
        ])
    }

    package static func resultJSON(_ r: SimulationResult) -> JSONValue {
        .object([
            ("replicas", .number(r.replicas)), ("slots_per_replica", .number(r.slotsPerReplica)), ("span_seconds", num(r.span, 3)),
            ("utilization", num(r.utilization)), ("events", .number(r.events)), ("meets_every_target", .bool(r.meetsEveryTarget)),
            ("sample_times", .array(r.sampleTimes.map { num($0, 3) })), ("lanes", .array(r.lanes.map(laneJSON))),
        ])
    }

    package static func json(_ plan: Planner.Plan) -> JSONValue {
        let e = PlanEconomics(plan: plan)
        let profileJSON = (try? JSONParser.parse(Array(plan.profile.encoded()))) ?? .null
        func optional(_ v: Double?) -> JSONValue { v.map { num($0) } ?? .null }
        var fields: [(String, JSONValue)] = []
        fields.append(("replicas", plan.replicas.map { JSONValue.number($0) } ?? .null))
        fields.append(("unreachable", plan.unreachable.map { JSONValue.string($0) } ?? .null))
        fields.append(("unit", .string(e.unit)))
        fields.append(("units", .number(e.units)))
        fields.append(("utilization_at_peak", num(e.utilizationAtPeak)))
        fields.append(("utilization_over_day", num(e.dayUtilization)))
        fields.append(("headroom", optional(plan.headroom)))
        fields.append(("goodput_per_unit_hour", num(e.goodputPerUnitHour, 1)))
        fields.append(("output_tokens_per_unit_hour", num(e.tokensPerUnitHour, 1)))
        fields.append(("cost_per_hour", optional(e.costPerHour)))
        fields.append(("cost_per_million_output_tokens", optional(e.costPerMillionTokens)))
        fields.append(("cost_per_thousand_requests", optional(e.costPerThousandRequests)))
        fields.append(("seed", .number(String(plan.seed))))
        fields.append(("peak", plan.peak.map(resultJSON) ?? .null))
        let sweep: [JSONValue] = plan.points.map { p in .object([("replicas", .number(p.replicas)), ("result", resultJSON(p.result))]) }
        fields.append(("sweep", .array(sweep)))
        fields.append(("profile", profileJSON))
        return .object(fields)
    }

    /// A what-if run as text (the caller puts a title above it).
    package static func whatIf(_ r: SimulationResult, markdown: Bool) -> String {
        let t = markdown ? markdownTable : table
        var out = ""
        out += String(
            format: "%d replicas × %d slots, %.0f s simulated, %d events, utilization %.0f%%\n\n", r.replicas, r.slotsPerReplica, r.span,
            r.events, r.utilization * 100)
        out += t(laneHeader, laneRows(r)) + "\n"
        let peakQueue = r.lanes.map { "\($0.lane) \($0.queueDepth.max() ?? 0)" }.joined(separator: ", ")
        out += (markdown ? "\n" : "") + "deepest queue sampled: \(peakQueue)\n"
        return out
    }
}
