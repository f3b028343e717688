import Foundation
import SwitchyardCore
import Testing

@testable import SwitchyardPlan

/// The simulator against closed forms and itself: Erlang C, the same seed twice, preemption.
@Suite struct SimulatorTests {
    /// A replica of one slot whose service time is exponential with mean `mean` seconds: the M in M/M/c.
    static func exponential(mean: Double) -> ReplicaProfile {
        ReplicaProfile(
            name: "M/M/c", gpusPerReplica: 1, accelerator: "test", slots: Sourced(1, "test"), ttftBase: Sourced(mean, "test"),
            ttftPerPromptToken: Sourced(0, "test"), ttftPerConcurrent: Sourced(0, "test"), tpotBase: Sourced(0, "test"),
            tpotPerConcurrent: Sourced(0, "test"), ttftSpread: .exponential)
    }

    /// One FIFO lane that never refuses: an unbounded queue and an hour to start.
    static var fifo: [LaneConfig] {
        var lane = LaneConfig(name: "realtime", priority: 0)
        lane.queue.maxSize = 0
        lane.queue.timeout = .seconds(3600)
        return [lane]
    }

    static func mmc(servers: Int, lambda: Double, requests: Int, seed: UInt64 = 7) throws -> SimulationResult {
        var setup = SimulationSetup(profile: exponential(mean: 1), replicas: servers)
        setup.lanes = fifo
        setup.model.queueTimeout = .seconds(3600)
        setup.totalTimeout = .seconds(7200)
        setup.seed = seed
        setup.duration = .seconds(Double(requests) / lambda)
        var load = LaneLoad(lane: "realtime", rate: lambda)
        load.prompt = .fixed(1)
        load.output = .fixed(1)
        return try Simulator.run(setup, loads: [load])
    }

    @Test func anMMcQueueWaitsAsErlangCSays() throws {
        // The sample mean of queue waits converges slowly (its variance grows as (1 − ρ)⁻⁴): at
        // half load 400,000 requests put it within about ±1.3% (95%); `bench/plan-sim.sh` checks
        // 80% load with ten million. The run is deterministic, so this is not a flaky bound.
        for (c, lambda) in [(4, 2.0), (2, 1.0)] {
            let result = try Self.mmc(servers: c, lambda: lambda, requests: 400_000)
            let lane = result.lanes[0]
            #expect(lane.shedTotal == 0 && lane.completed == lane.offered, "nothing refused: \(lane.shed)")
            let expected = ErlangC.meanWait(servers: c, arrivalRate: lambda, serviceRate: 1)
            let error = abs(lane.meanQueueWait - expected) / expected
            #expect(error < 0.02, "M/M/\(c) at λ=\(lambda): simulated \(lane.meanQueueWait) s, Erlang C \(expected) s (\(error * 100)% off)")
            // Utilization is λ/(cμ).
            #expect(abs(result.utilization - lambda / Double(c)) < 0.02, "utilization \(result.utilization)")
        }
    }

    @Test func erlangCMatchesItsTextbookValues() {
        // Two servers, a = 1 erlang: C = 1/3; Wq = C/(cμ − λ) = 1/3.
        #expect(abs(ErlangC.waitProbability(servers: 2, offered: 1) - 1.0 / 3) < 1e-12)
        #expect(abs(ErlangC.meanWait(servers: 2, arrivalRate: 1, serviceRate: 1) - 1.0 / 3) < 1e-12)
        // One server: M/M/1, Wq = ρ/(μ − λ).
        #expect(abs(ErlangC.meanWait(servers: 1, arrivalRate: 0.5, serviceRate: 1) - 1) < 1e-12)
    }

    @Test func theSameSeedGivesTheSameSimulationByteForByte() throws {
        func run(_ seed: UInt64) throws -> String {
            var setup = SimulationSetup(profile: Self.exponential(mean: 0.5), replicas: 3)
            setup.seed = seed
            setup.duration = .seconds(300)
            var realtime = LaneLoad(lane: "realtime", rate: 4)
            realtime.slo = PlanSLO(ttft: 1)
            realtime.tenants = 5
            var batch = LaneLoad(lane: "batch", rate: 2)
            batch.arrival = .gamma(burstiness: 0.25)
            return PlanReport.resultJSON(try Simulator.run(setup, loads: [realtime, batch])).serializedString
        }
        let a = try run(42), b = try run(42), c = try run(43)
        #expect(a == b)
        #expect(a != c, "another seed, another run")
    }

    /// The real pool state machine preempts batch work for realtime requests that would miss their
    /// start deadline, and the simulator counts it.
    @Test func urgentRequestsPreemptTheBatchLaneAsTheGatewayWould() throws {
        var batch = LaneConfig(name: "batch", priority: 1)
        batch.preemptible = true
        batch.maxPreemptions = 3
        batch.queue.maxSize = 0
        batch.queue.timeoutAction = .delay
        var realtime = LaneConfig(name: "realtime", priority: 0)
        realtime.slo.ttft = .milliseconds(600)
        var setup = SimulationSetup(profile: Self.exponential(mean: 2), replicas: 2)
        setup.lanes = [realtime, batch]
        setup.duration = .seconds(600)
        var rt = LaneLoad(lane: "realtime", rate: 0.3)
        rt.slo = PlanSLO(ttft: 0.6)
        let result = try Simulator.run(setup, loads: [rt, LaneLoad(lane: "batch", rate: 2)])
        let batchLane = try #require(result.lanes.first { $0.lane == "batch" })
        #expect(batchLane.preempted > 0, "a saturated batch lane under realtime arrivals is preempted")
        #expect(result.lanes[0].completed > 0)
    }

    /// Two slots; prefill 0.1 s + 1 ms per prompt token; 10 ms per output token.
    static func twoSlots(_ prefill: ReplicaProfile.Prefill) -> ReplicaProfile {
        var profile = ReplicaProfile(
            name: "two slots", gpusPerReplica: 1, accelerator: "test", slots: Sourced(2, "test"), ttftBase: Sourced(0.1, "test"),
            ttftPerPromptToken: Sourced(0.001, "test"), ttftPerConcurrent: Sourced(0, "test"), tpotBase: Sourced(0.01, "test"),
            tpotPerConcurrent: Sourced(0, "test"))
        profile.prefill = prefill
        return profile
    }

    /// Serial prefill: prompts that arrive together on one replica are prefilled one after the
    /// other (the second's first token waits for the first's prefill); parallel: side by side.
    @Test func aSerialPrefillMakesTheSecondPromptWait() throws {
        func meanTTFT(_ prefill: ReplicaProfile.Prefill) throws -> Double {
            let setup = SimulationSetup(profile: Self.twoSlots(prefill), replicas: 1)
            let trace = [
                TraceRequest(at: 0, lane: "realtime", prompt: 400, output: 2), TraceRequest(at: 0, lane: "realtime", prompt: 400, output: 2),
            ]
            return try Simulator.run(setup, trace: trace).lanes[0].ttft.mean
        }
        // Each prefill takes 0.1 + 0.4 = 0.5 s: serial first tokens at 0.5 and 1.0 s, parallel both at 0.5 s.
        #expect(abs(try meanTTFT(.serial) - 0.75) < 0.01)
        #expect(abs(try meanTTFT(.parallel) - 0.5) < 0.01)
    }

    /// Serial prefill holds decoding up: a request decoding 10 tokens (0.1 s) from 0.5 s is
    /// stopped by another prompt's prefill from 0.55 to 1.05 s and finishes at 1.10 s.
    @Test func aSerialPrefillHoldsDecodingUp() throws {
        func longestE2E(_ prefill: ReplicaProfile.Prefill) throws -> Double {
            let profile = Self.twoSlots(prefill)
            let trace = [
                TraceRequest(at: 0, lane: "realtime", prompt: 400, output: 11), TraceRequest(at: 0.55, lane: "realtime", prompt: 400, output: 11),
            ]
            return try Simulator.run(SimulationSetup(profile: profile, replicas: 1), trace: trace).lanes[0].e2e.max
        }
        #expect(abs(try longestE2E(.serial) - 1.10) < 0.001)
        #expect(abs(try longestE2E(.parallel) - 0.60) < 0.001)
    }

    @Test func prefillTimeIsTakenOutOfTheDecodeItHeldUp() {
        let prefilling = ProfileFit.Intervals([(0, 1), (0.5, 2), (3, 4), (10, 10)])
        #expect(prefilling.covered(from: 0, to: 5) == 3)
        #expect(prefilling.covered(from: 1.5, to: 3.5) == 1)
        #expect(prefilling.covered(from: 2, to: 3) == 0)
    }

    @Test func anUnknownLaneIsNamed() {
        #expect(throws: PlanError.self) {
            try Simulator.run(SimulationSetup(profile: Self.exponential(mean: 1), replicas: 1), loads: [LaneLoad(lane: "gold", rate: 1)])
        }
    }
}
