/// The acceptance verdict of one lane, with its reasons (pure: computed from the records).
package struct LaneVerdict: Sendable {
    package enum Outcome: String, Sendable {
        case pass = "PASS"
        case fail = "FAIL"
        case void = "VOID"
    }

    /// What the gateway did during a fault, from its `/metrics` (counter increases).
    package struct GatewayActivity: Sendable, Equatable {
        package var retries = 0
        package var fallbacks = 0
        package var ejections = 0
        package var upstreamErrors = 0
        package init(retries: Int = 0, fallbacks: Int = 0, ejections: Int = 0, upstreamErrors: Int = 0) {
            self.retries = retries
            self.fallbacks = fallbacks
            self.ejections = ejections
            self.upstreamErrors = upstreamErrors
        }

        package var text: String {
            "\(retries) retries, \(fallbacks) fallbacks, \(ejections) ejections, \(upstreamErrors) upstream errors"
        }

        /// Counter totals from a `/metrics` text.
        package static func totals(_ metrics: String) -> GatewayActivity {
            var a = GatewayActivity()
            for line in metrics.split(separator: "\n") where line.hasPrefix("switchyard_") {
                guard let value = line.split(separator: " ").last.flatMap({ Double($0) }) else { continue }
                let n = Int(value)
                if line.hasPrefix("switchyard_retries_total{") {
                    a.retries += n
                } else if line.hasPrefix("switchyard_fallbacks_total{") {
                    a.fallbacks += n
                } else if line.hasPrefix("switchyard_ejections_total{") {
                    a.ejections += n
                } else if line.hasPrefix("switchyard_upstream_errors_total{") {
                    a.upstreamErrors += n
                }
            }
            return a
        }

        package static func - (a: GatewayActivity, b: GatewayActivity) -> GatewayActivity {
            GatewayActivity(
                retries: a.retries - b.retries, fallbacks: a.fallbacks - b.fallbacks, ejections: a.ejections - b.ejections,
                upstreamErrors: a.upstreamErrors - b.upstreamErrors)
        }
    }

    /// A fault phase whose fault did not happen as specified: the run cannot vouch for it.
    package enum FaultProblem: Sendable, Equatable {
        /// Never applied (no such backend, no admin API): the phase tested nothing; the verdict is VOID.
        case notInjected(String)
        /// Applied and it failed (a rollout or reload the gateway refused or did not finish): FAIL.
        case failed(String)
    }

    package struct Recovery: Sendable {
        package var phase: String
        package var fault: String
        /// Seconds from the fault being lifted until goodput was back to ≥ 90% of its pre-fault
        /// level; nil when it never came back within the run.
        package var seconds: Double?
        package var preFaultGoodput: Double
        /// When the fault stopped acting (a kill: at once; stop/chaos: the phase end), run seconds.
        package var liftedAt: Double
        /// Requests scheduled during the fault, and how many of them clients saw hurt (failed or
        /// missed an SLO) and resent.
        package var duringFault = 0
        package var hurt = 0
        package var resent = 0
        /// From the gateway's `/metrics`; nil without `metrics_url`.
        package var gateway: GatewayActivity?
    }

    package var lane: String
    package var outcome: Outcome
    package var reasons: [String]
    /// Statistics over the judged phases.
    package var summary: LaneSummary
    package var recoveries: [Recovery]

    /// Phase boundaries on the run clock.
    package struct PhaseSpan: Sendable {
        package var name: String
        package var start: Double
        package var end: Double
        package var fault: AcceptSpec.Fault?
        package var judged: Bool
    }

    package static func spans(_ phases: [AcceptSpec.Phase]) -> [PhaseSpan] {
        var t = 0.0
        return phases.map { p in
            defer { t += p.duration.seconds }
            return PhaseSpan(name: p.name, start: t, end: t + p.duration.seconds, fault: p.fault, judged: p.judged)
        }
    }

    package static func judge(
        lane: AcceptSpec.Lane, records all: [RequestRecord], phases: [PhaseSpan], recoveryWithin: Double?,
        offeredRate: Double?, gateway: [String: GatewayActivity] = [:], faultProblems: [String: FaultProblem] = [:]
    ) -> LaneVerdict {
        let slo = lane.requestSLO
        let judged = all.map { r -> RequestRecord in
            var r = r
            let t = r.tSched.seconds
            r.warmup = !phases.contains { $0.judged && t >= $0.start && t < $0.end }
            return r
        }
        let judgedSeconds = phases.filter(\.judged).reduce(0) { $0 + ($1.end - $1.start) }
        let summary = LaneSummary.compute(lane: lane.name, records: judged, offeredRate: offeredRate, slo: slo, minimumWindow: judgedSeconds)
        var reasons: [String] = []
        var failed = false
        for bound in lane.slos {
            let name = bound.metric == "stall" ? "stall" : bound.metric
            guard let m = summary.metric(name) else {
                reasons.append("\(bound.metric) \(bound.percentile.rawValue): no successful request measured it")
                failed = true
                continue
            }
            let value = m.value(bound.percentile)
            let ok = value <= bound.bound.seconds
            var line = String(
                format: "%@ %@ %.1f ms %@ %.1f ms (n=%d)", bound.metric, bound.percentile.rawValue, value * 1000,
                ok ? "≤" : ">", bound.bound.seconds * 1000, m.n)
            if m.n < MetricSummary.minimumSamples(for: bound.percentile) {
                line +=
                    "; n is too small for \(bound.percentile.rawValue) (≥ \(MetricSummary.minimumSamples(for: bound.percentile)) needed), it is close to the max"
            }
            reasons.append(line)
            if !ok { failed = true }
        }
        if let target = lane.attainment {
            let attained = summary.attainment ?? (summary.scheduled > 0 ? Double(summary.succeeded) / Double(summary.scheduled) : 0)
            let ok = attained >= target
            reasons.append(
                String(
                    format: "attainment %.1f%% %@ %.1f%% (%d of %d requests good; failed and shed count as misses)",
                    attained * 100, ok ? "≥" : "<", target * 100, Int((attained * Double(summary.scheduled)).rounded()), summary.scheduled))
            if !ok { failed = true }
        }
        if summary.scheduled == 0 {
            reasons.append("no request was scheduled in a judged phase")
            failed = true
        }
        var recoveries: [Recovery] = []
        var notInjected: [String] = []
        for (i, phase) in phases.enumerated() {
            guard let fault = phase.fault else { continue }
            switch faultProblems[phase.name] {
            case .notInjected(let why):
                notInjected.append("\(fault.label) in phase \(phase.name) was not injected (\(why)): the run did not test it")
                continue
            case .failed(let why):
                reasons.append("\(fault.label) in phase \(phase.name) failed: \(why)")
                failed = true
            case nil: break
            }
            let before = phases[..<i].last { $0.judged } ?? (i > 0 ? phases[i - 1] : nil)
            guard let before else { continue }
            let lifted: Double
            if case .killBackend = fault { lifted = phase.start } else { lifted = phase.end }
            let runEnd = phases.last?.end ?? phase.end
            let pre = goodput(all, slo: slo, from: before.start, to: before.end)
            let seconds = recoveryTime(all, slo: slo, preLevel: pre, liftedAt: lifted, runEnd: runEnd)
            // What clients saw, from the data: a recovery time only means something after an impact.
            let during = all.filter { $0.tSched.seconds >= phase.start && $0.tSched.seconds < phase.end }
            let hurt = during.filter { !slo.met(by: $0) }.count
            let resent = during.filter(\.resent).count
            recoveries.append(
                Recovery(
                    phase: phase.name, fault: fault.label, seconds: seconds, preFaultGoodput: pre, liftedAt: lifted, duringFault: during.count,
                    hurt: hurt, resent: resent, gateway: gateway[phase.name]))
            let resends =
                (resent > 0 ? ", \(resent) resent by the client" : "")
                + (gateway[phase.name].map { " (gateway absorbed: \($0.text))" } ?? " (gateway activity unknown: no metrics_url)")
            if during.isEmpty {
                reasons.append("no request was scheduled during \(fault.label): its impact is unknown")
                failed = true
            } else if hurt == 0 {
                reasons.append("no client-visible impact of \(fault.label): all \(during.count) requests scheduled during it were good\(resends)")
            } else if let seconds {
                reasons.append(
                    String(
                        format: "%d of %d requests hurt during %@%@; recovered %.1f s after it (goodput back to ≥ 90%% of %.2f req/s)", hurt,
                        during.count, fault.label, resends, seconds, pre))
                if let limit = recoveryWithin, seconds > limit {
                    reasons[reasons.count - 1] += String(format: ", over the %.0f s limit", limit)
                    failed = true
                }
            } else {
                reasons.append(String(format: "did not recover after %@ within the run (pre-fault goodput %.2f req/s)", fault.label, pre))
                if recoveryWithin != nil || pre > 0 { failed = true }
            }
        }
        let invalid = summary.invalid + notInjected
        let outcome: Outcome = !invalid.isEmpty ? .void : (failed ? .fail : .pass)
        if outcome == .void { reasons = invalid.map { "void: \($0)" } + reasons }
        return LaneVerdict(lane: lane.name, outcome: outcome, reasons: reasons, summary: summary, recoveries: recoveries)
    }

    /// Good requests (succeeded, every per-request SLO met) completed per second in [from, to).
    package static func goodput(_ records: [RequestRecord], slo: RequestSLO, from: Double, to: Double) -> Double {
        guard to > from else { return 0 }
        let good = records.filter { r in
            guard let end = r.tLast?.seconds, end >= from, end < to else { return false }
            return slo.met(by: r)
        }.count
        return Double(good) / (to - from)
    }

    /// The first moment after `liftedAt` from which goodput over a `window` is back to ≥ `share`
    /// of `preLevel`, as seconds after `liftedAt`; nil when that never happens before `runEnd`.
    package static func recoveryTime(
        _ records: [RequestRecord], slo: RequestSLO, preLevel: Double, liftedAt: Double, runEnd: Double,
        window: Double = 5, share: Double = 0.9, step: Double = 0.25
    ) -> Double? {
        guard preLevel > 0 else { return nil }
        var t = liftedAt
        while t + window <= runEnd + 1e-9 {
            if goodput(records, slo: slo, from: t, to: t + window) >= share * preLevel { return t - liftedAt }
            t += step
        }
        return nil
    }
}
