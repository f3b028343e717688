import SwitchyardCore
import Testing

@testable import SwitchyardEvidence

@Suite struct AcceptSpecTests {
    static let valid = """
        target: { url: "http://127.0.0.1:8080/v1", model: smollm2, admin_url: "http://127.0.0.1:8080", admin_token: secret-secret-secret }
        recovery_within: 30s
        lanes:
          - name: realtime
            load: { rate: 2, arrival: gamma, burstiness: 0.5 }
            slo: { ttft: { p99: 2s, p50: 500ms }, tpot: { p95: 200ms } }
            attainment: 0.9
          - name: batch
            header: none
            load: { concurrency: 4 }
            stream: false
            output_tokens: uniform:16:64
        phases:
          - { name: warmup, duration: 5s }
          - { name: steady, duration: 30s }
          - { name: fault, duration: 10s, fault: { kill_backend: smollm2-0 } }
          - { name: chaos, duration: 10s, fault: { chaos: { reset_rate: 0.1, status_503_rate: 0.2, latency: 50ms } } }
          - { name: recovery, duration: 20s }
        """

    @Test func specDecodes() throws {
        let spec = try AcceptSpec.load(yaml: Self.valid)
        #expect(spec.lanes.map(\.name) == ["realtime", "batch"])
        #expect(spec.lanes[0].load == .rate(2, .gamma(burstiness: 0.5)))
        #expect(spec.lanes[0].header == "realtime")
        #expect(spec.lanes[1].header == nil)
        #expect(spec.lanes[1].outputTokens == .uniform(16, 64))
        #expect(spec.lanes[0].slos.count == 3)
        #expect(spec.lanes[0].requestSLO.ttft == 0.5, "the tightest bound is the per-request limit")
        #expect(spec.phases.map(\.judged) == [false, true, false, false, false])
        #expect(
            spec.phases[3].fault
                == .chaos(
                    {
                        var f = ChaosFaults()
                        f.resetRate = 0.1
                        f.status503Rate = 0.2
                        f.latency = .milliseconds(50)
                        return f
                    }(), at: .backends([])))
        #expect(spec.totalDuration == .seconds(75))
        #expect(!spec.usesClientChaos, "chaos sits at the backends by default")
        #expect(spec.chaosBackends == [], "every backend of the model")
        #expect(spec.sha256.count == 64)
    }

    @Test func problemsAreNamedByPath() {
        #expect {
            try AcceptSpec.load(
                yaml: """
                    target: { url: "not a url", model: m }
                    lanes:
                      - name: a
                        load: { rate: 2, arrival: bursty }
                        slo: { ttft: { p42: 1s } }
                    phases:
                      - { name: fault, duration: 5s, fault: { kill_backend: m-0 } }
                      - { name: x }
                      - { name: upgrade, duration: 5s, fault: { rollout: true } }
                      - { name: change, duration: 5s, fault: { reload: /nonexistent/new.yaml } }
                      - { name: both, duration: 5s, fault: { rollout: true, kill_backend: m-0 } }
                    """)
        } throws: { error in
            let text = "\(error)"
            return text.contains("target.url") && text.contains("lanes[0].load.arrival") && text.contains("lanes[0].slo.ttft")
                && text.contains("phases[0].fault: killing or stopping a backend needs target.admin_url")
                && text.contains("phases[1].duration: required")
                && text.contains("phases[2].fault: a rollout or reload needs target.admin_url") && !text.contains("phases[1].fault")
                && text.contains("phases[3].fault.reload: cannot read '/nonexistent/new.yaml'")
                && text.contains("phases[4].fault: give exactly one of")
        }
    }

    @Test func chaosIsPlacedAtTheNamedBackendsOrTheClient() throws {
        func spec(_ faults: [String], admin: Bool = true) throws(ConfigError) -> AcceptSpec {
            let target =
                admin
                ? #"target: { url: "http://127.0.0.1:8080/v1", model: m, admin_url: "http://127.0.0.1:8080", admin_token: t }"#
                : #"target: { url: "http://127.0.0.1:8080/v1", model: m }"#
            let phases = faults.enumerated().map { "  - { name: f\($0), duration: 1s, fault: \($1) }" }.joined(separator: "\n")
            return try AcceptSpec.load(yaml: "\(target)\nlanes: [{ name: a, load: { rate: 1 } }]\nphases:\n\(phases)")
        }
        let named = try spec(["{ chaos: { reset_rate: 0.5 }, backends: m-0 }", "{ chaos: { latency: 1s }, at: backend, backends: [m-1, m-0] }"])
        #expect(named.chaosBackends == ["m-0", "m-1"])
        #expect(!named.usesClientChaos)
        #expect(named.phases[0].fault?.label == "chaos at m-0: resets 50%")
        let client = try spec(["{ chaos: { reset_rate: 0.5 }, at: client }"], admin: false)
        #expect(client.usesClientChaos)
        #expect(client.chaosBackends == nil)
        #expect(client.phases[0].fault?.label == "chaos client-side: resets 50%")
        let mixed = try spec(["{ chaos: { reset_rate: 0.5 }, backends: m-1 }", "{ chaos: { reset_rate: 0.1 } }"])
        #expect(mixed.chaosBackends == [], "one phase at every backend puts a proxy before each")

        for (faults, admin, message) in [
            (
                ["{ chaos: { reset_rate: 0.5 } }"], false,
                "phases[0].fault: chaos at: backend (the default) re-points backends through the gateway's admin API"
            ),
            (["{ chaos: { reset_rate: 0.5 }, at: middle }"], true, "phases[0].fault.at: must be backend"),
            (["{ chaos: { reset_rate: 0.5 }, at: client, backends: m-0 }"], true, "phases[0].fault.backends: names backends for at: backend"),
            (["{ kill_backend: m-0, at: client }"], true, "phases[0].fault: at and backends place a chaos fault"),
        ] {
            #expect(throws: ConfigError.self, "\(faults)") { try spec(faults, admin: admin) }
            do {
                _ = try spec(faults, admin: admin)
            } catch {
                #expect("\(error)".contains(message), "\(error)")
            }
        }
    }

    static func record(_ id: Int, sched: Double, end: Double, ok: Bool = true) -> RequestRecord {
        var r = RequestRecord(id: id, lane: "l", tSched: .seconds(sched))
        r.tSend = .seconds(sched)
        r.status = ok ? 200 : 503
        if ok {
            r.tFirst = .seconds(end)
            r.tLast = .seconds(end)
        } else {
            r.error = "HTTP 503"
        }
        return r
    }

    @Test func recoveryIsTheFirstWindowBackAt90Percent() {
        // 2 good/s until 10 s, nothing good from 10 to 14 s, 2 good/s again from 14 s.
        var records: [RequestRecord] = []
        var id = 0
        for tenth in stride(from: 0, to: 300, by: 5) {
            let t = Double(tenth) / 10
            let ok = t < 10 || t >= 14
            records.append(Self.record(id, sched: t, end: t + 0.1, ok: ok))
            id += 1
        }
        let pre = LaneVerdict.goodput(records, slo: RequestSLO(), from: 0, to: 10)
        #expect(pre == 2)
        let recovery = LaneVerdict.recoveryTime(records, slo: RequestSLO(), preLevel: pre, liftedAt: 10, runEnd: 30)
        // Good requests end at 14.1, 14.6, …: the window [13.25, 18.25) holds nine of them
        // (≥ 90% of 2/s × 5 s), the first on the 0.25 s grid to do so.
        #expect(recovery == 3.25)
        #expect(
            LaneVerdict.recoveryTime(records.filter { $0.tSched.seconds < 10 }, slo: RequestSLO(), preLevel: pre, liftedAt: 10, runEnd: 30) == nil)
    }

    @Test func verdictCountsFailuresAsMissesAndNamesTheReasons() throws {
        var spec = try AcceptSpec.load(yaml: Self.valid)
        spec.lanes[0].slos = [AcceptSpec.SLOBound(metric: "e2e", percentile: .p50, bound: .milliseconds(200))]
        spec.lanes[0].attainment = 0.9
        let records = (0..<20).map { i in Self.record(i, sched: 6 + Double(i), end: 6 + Double(i) + 0.1, ok: i % 5 != 0) }
        let spans = LaneVerdict.spans([spec.phases[0], spec.phases[1]])
        let v = LaneVerdict.judge(lane: spec.lanes[0], records: records, phases: spans, recoveryWithin: nil, offeredRate: nil)
        #expect(v.outcome == .fail)
        #expect(v.reasons.contains { $0.hasPrefix("e2e p50 100.0 ms ≤ 200.0 ms (n=16)") })
        #expect(v.reasons.contains { $0.hasPrefix("attainment 80.0% < 90.0%") })
    }

    /// "Recovered after" only from data: a fault nobody saw is reported as such, one no request
    /// ran through is unknown (never a pass), and a resend is counted.
    @Test func aFaultIsJudgedByWhatClientsSaw() throws {
        var spec = try AcceptSpec.load(yaml: Self.valid)
        spec.lanes[0].slos = []
        // warmup 0–5, steady 5–35, fault (kill) 35–45, chaos 45–55, recovery 55–75.
        let spans = LaneVerdict.spans(spec.phases)
        var records = (0..<70).map { i in Self.record(i, sched: 5 + Double(i), end: 5 + Double(i) + 0.2) }
        // Two failures during the chaos phase; one request resent during the kill.
        records[42].status = 502
        records[43].status = 502
        records[31].resent = true
        let v = LaneVerdict.judge(lane: spec.lanes[0], records: records, phases: spans, recoveryWithin: nil, offeredRate: nil)
        #expect(
            v.reasons.contains {
                $0.hasPrefix("no client-visible impact of kill smollm2-0: all 10 requests scheduled during it were good, 1 resent")
            }, "\(v.reasons)")
        #expect(v.reasons.contains { $0.hasPrefix("2 of 10 requests hurt during chaos") }, "\(v.reasons)")
        #expect(v.recoveries.map(\.hurt) == [0, 2])
        #expect(v.recoveries.first?.resent == 1)
        // With the gateway's counters, the absorbed work is named.
        let absorbed = LaneVerdict.judge(
            lane: spec.lanes[0], records: records, phases: spans, recoveryWithin: nil, offeredRate: nil,
            gateway: ["fault": .init(retries: 3, fallbacks: 1, ejections: 1, upstreamErrors: 4)])
        #expect(
            absorbed.reasons.contains {
                $0.contains("no client-visible impact") && $0.contains("gateway absorbed: 3 retries, 1 fallbacks, 1 ejections")
            },
            "\(absorbed.reasons)")
        #expect(v.reasons.contains { $0.contains("gateway activity unknown: no metrics_url") })
        // Nobody sent anything during the faults: unknown, and the verdict cannot pass.
        let quiet = records.filter { $0.tSched.seconds < 35 || $0.tSched.seconds >= 55 }
        let unknown = LaneVerdict.judge(lane: spec.lanes[0], records: quiet, phases: spans, recoveryWithin: nil, offeredRate: nil)
        #expect(unknown.reasons.contains { $0.contains("its impact is unknown") })
        #expect(unknown.outcome != .pass)
    }

    /// A fault that never happened cannot be passed on ("no impact" of nothing): VOID, naming it;
    /// a rollout the gateway refused or did not finish fails the lane, whatever clients saw.
    @Test func aFaultNotInjectedVoidsTheVerdictAndAFailedRolloutFailsIt() throws {
        var spec = try AcceptSpec.load(yaml: Self.valid)
        spec.lanes[0].slos = []
        let spans = LaneVerdict.spans(spec.phases)
        let records = (0..<70).map { i in Self.record(i, sched: 5 + Double(i), end: 5 + Double(i) + 0.2) }
        let clean = LaneVerdict.judge(lane: spec.lanes[0], records: records, phases: spans, recoveryWithin: nil, offeredRate: nil)
        #expect(clean.outcome == .pass, "\(clean.reasons)")
        let missing = LaneVerdict.judge(
            lane: spec.lanes[0], records: records, phases: spans, recoveryWithin: nil, offeredRate: nil,
            faultProblems: ["fault": .notInjected("no managed backend named 'smollm2-0'")])
        #expect(missing.outcome == .void)
        #expect(
            missing.reasons.first
                == "void: kill smollm2-0 in phase fault was not injected (no managed backend named 'smollm2-0'): the run did not test it",
            "\(missing.reasons)")
        #expect(!missing.reasons.contains { $0.contains("no client-visible impact of kill") }, "\(missing.reasons)")
        let failed = LaneVerdict.judge(
            lane: spec.lanes[0], records: records, phases: spans, recoveryWithin: nil, offeredRate: nil,
            faultProblems: ["chaos": .failed("POST /admin/rollout answered 409")])
        #expect(failed.outcome == .fail)
        #expect(failed.reasons.contains { $0.hasSuffix("in phase chaos failed: POST /admin/rollout answered 409") }, "\(failed.reasons)")
    }

    @Test func gatewayActivityIsTheCounterIncreaseAcrossTheFault() {
        let metrics = """
            switchyard_retries_total{reason="connect_error"} 2
            switchyard_retries_total{reason="status_503"} 3
            switchyard_retries_refused_total{reason="budget_exhausted"} 9
            switchyard_fallbacks_total{from="a",to="b"} 1
            switchyard_ejections_total{backend="x"} 1
            switchyard_upstream_errors_total{backend="x",kind="reset"} 6
            """
        #expect(LaneVerdict.GatewayActivity.totals(metrics) == .init(retries: 5, fallbacks: 1, ejections: 1, upstreamErrors: 6))
        let spans = [
            LaneVerdict.PhaseSpan(name: "steady", start: 0, end: 10, fault: nil, judged: true),
            LaneVerdict.PhaseSpan(name: "chaos", start: 10, end: 20, fault: .killBackend("m-0"), judged: false),
        ]
        let samples: [(t: Double, totals: LaneVerdict.GatewayActivity)] = [
            (9.5, .init(retries: 1)), (15, .init(retries: 4)), (20.5, .init(retries: 7, fallbacks: 2)),
        ]
        #expect(AcceptRunner.gatewayActivity(samples, phases: spans) == ["chaos": .init(retries: 6, fallbacks: 2)])
        #expect(AcceptRunner.gatewayActivity([], phases: spans).isEmpty, "no samples: unknown, not zero")
    }
}
