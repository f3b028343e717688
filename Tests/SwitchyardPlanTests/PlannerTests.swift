import Foundation
import SwitchyardCore
import Testing

@testable import SwitchyardPlan

@Suite struct PlannerTests {
    /// Requests made by a known replica model, read back by the fit.
    @Test func aFitRecoversTheReplicaThatMadeTheObservations() throws {
        var rng = SplitMix64(seed: 3)
        var observations: [ProfileFit.Observation] = []
        var t = 0.0
        // Batches of 1–4 requests sent together, one batch at a time; prompts 32–512 tokens. As a
        // serial-prefill engine serves them: prompts one after the other, decoding once the last
        // prompt is done (the fit takes that wait out of each decode).
        for round in 0..<200 {
            let k = round % 4 + 1
            var clock = t
            var started: [(prompt: Int, first: Double)] = []
            for _ in 0..<k {
                let prompt = 32 + Int(rng.next() % 481)
                clock += 0.05 + 0.0004 * Double(prompt) + 0.01 * Double(k - 1)
                started.append((prompt, clock))
            }
            let end = clock + 31 * (0.02 + 0.005 * Double(k - 1))
            for s in started { observations.append(.init(send: t, first: s.first, last: end, prompt: s.prompt, output: 32)) }
            t += 4
        }
        let p = try ProfileFit.fit(observations, slots: 4, name: "test", source: "bundle-a")
        #expect(abs(p.ttftBase.value - 0.05) < 0.005, "\(p.ttftBase)")
        #expect(abs(p.ttftPerPromptToken.value - 0.0004) < 0.00002, "\(p.ttftPerPromptToken)")
        #expect(abs(p.tpotBase.value - 0.02) < 0.001 && abs(p.tpotPerConcurrent.value - 0.005) < 0.0005, "\(p.tpotBase) \(p.tpotPerConcurrent)")
        #expect(p.ttftBase.source.contains("measured: bundle-a"))
        // Too little evidence is an error that says what is missing.
        #expect(throws: PlanError.self) { try ProfileFit.fit(Array(observations.prefix(5)), slots: 4, name: "x", source: "b") }
    }

    @Test func aGPUEstimateFollowsTheDatasheetAndSaysSo() throws {
        var e = GPUEstimate(gpu: "h100", paramsB: 8)
        e.contextTokens = 2048
        let p = try e.profile()
        // 16 GB of weights at 80% of 3.35 TB/s, plus 2 ms: about 8 ms per decode step.
        #expect(abs(p.tpotBase.value - (16e9 / (3.35e12 * 0.8) + 0.002)) < 1e-6)
        #expect(p.tpotBase.source.contains("datasheet") && p.tpotBase.source.contains("assumption"))
        #expect(p.slots.value > 1 && p.gpusPerReplica == 1)
        // An H200 has more bandwidth: a faster step.
        #expect(try GPUEstimate(gpu: "h200", paramsB: 8).profile().tpotBase.value < p.tpotBase.value)
        #expect(throws: PlanError.self) { try GPUEstimate(gpu: "tpu9", paramsB: 8).profile() }
        #expect(throws: PlanError.self) { try GPUEstimate(gpu: "l4", paramsB: 70).profile() }
    }

    @Test func aDemandWithMistakesNamesEachField() {
        do {
            _ = try Demand.load(
                yaml: """
                    lanes:
                      realtime:
                        rate: -1
                        arrival: sometimes
                        daily: [1, 2]
                      batch:
                        output_tokens: lots
                    """)
            Issue.record("accepted")
        } catch {
            let text = error.issues.map(\.description).joined(separator: "\n")
            for field in ["lanes.realtime.rate", "lanes.realtime.arrival", "lanes.realtime.daily", "lanes.batch.rate", "lanes.batch.output_tokens"] {
                #expect(text.contains(field), "\(field) in:\n\(text)")
            }
        }
    }

    @Test func thePlanIsTheFewestReplicasThatMeetEveryTarget() throws {
        var demand = Demand()
        demand.duration = .seconds(1200)
        demand.pricePerGPUHour = 2
        var load = LaneLoad(lane: "realtime", rate: 6)
        load.prompt = .fixed(1)
        load.output = .fixed(1)
        // Exponential service of mean 1 s: 1.8% take longer than 4 s even without a queue.
        load.slo = PlanSLO(ttft: 4)
        load.attainment = 0.95
        demand.loads = [load]
        var setup = SimulationSetup(profile: SimulatorTests.exponential(mean: 1), replicas: 1)
        setup.lanes = SimulatorTests.fifo
        let plan = try Planner(base: setup, demand: demand).plan()
        let chosenCount = plan.replicas
        let n = try #require(chosenCount, "\(plan.unreachable ?? "")")
        #expect(n >= 7, "6 erlangs need more than 6 servers")
        let tried = plan.points.map(\.replicas)
        let chosen = plan.points.first { $0.replicas == n }
        #expect(chosen?.result.meetsEveryTarget == true)
        let fewer = plan.points.first { $0.replicas == n - 1 }
        #expect(fewer?.result.meetsEveryTarget == false, "the count below was tried and missed: \(tried)")
        // A target no count can meet is said to be unreachable, without trying thousands.
        var strict = demand
        strict.loads[0].slo = PlanSLO(ttft: 2)
        let impossible = try Planner(base: setup, demand: strict).plan()
        #expect(impossible.replicas == nil && impossible.unreachable?.contains("realtime") == true, "\(impossible.unreachable ?? "-")")
        #expect(impossible.points.count < 10)
        #expect((plan.headroom ?? 0) >= 1)
        let e = PlanEconomics(plan: plan)
        #expect(e.units == n && e.costPerHour == Double(n) * 2)
        // 6 requests/s of one token: cost per million tokens is the hour's cost over 21,600 tokens.
        #expect(abs((e.costPerMillionTokens ?? 0) - Double(n) * 2 / 21_600 * 1e6) < 1e-6)
        #expect(e.goodputPerUnitHour > 0 && e.goodputPerUnitHour <= e.tokensPerUnitHour)
        let text = PlanReport.text(plan, markdown: false)
        #expect(text.contains("replicas") && text.contains("cost per million output tokens"))
    }
}
