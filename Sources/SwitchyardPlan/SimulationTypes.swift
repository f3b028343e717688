import Foundation
import SwitchyardCore

/// A lane's offered load in a simulation.
package struct LaneLoad: Sendable, Equatable {
    package var lane: String
    /// Requests per second (at the peak of `daily`).
    package var rate: Double
    package var arrival: ArrivalProcess = .poisson
    /// Share of the peak rate in each hour of the day (24 values); nil: the rate all day.
    package var daily: [Double]?
    package var prompt: TokenDistribution = .fixed(128)
    package var output: TokenDistribution = .fixed(64)
    package var tenants = 1
    package var slo = PlanSLO()
    /// Share of requests that must meet the SLO.
    package var attainment = 0.99

    package init(lane: String, rate: Double) {
        self.lane = lane
        self.rate = rate
    }

    /// The day's average rate as a share of the peak (1 without `daily`).
    package var dailyShare: Double { daily.map { d in d.reduce(0, +) / 24 / max(1e-9, d.max() ?? 1) } ?? 1 }
}

/// Per-request SLO in seconds (TTFT and E2E from arrival at the gateway).
package struct PlanSLO: Sendable, Equatable {
    package var ttft: Double?
    package var tpot: Double?
    package var e2e: Double?
    package init(ttft: Double? = nil, tpot: Double? = nil, e2e: Double? = nil) {
        self.ttft = ttft
        self.tpot = tpot
        self.e2e = e2e
    }
    package var isEmpty: Bool { ttft == nil && tpot == nil && e2e == nil }
}

/// One request of a recorded trace (a bundle's `requests.jsonl`).
package struct TraceRequest: Sendable, Equatable {
    package var at: Double
    package var lane: String
    package var prompt: Int
    package var output: Int
    package var tenant: String
    package init(at: Double, lane: String, prompt: Int, output: Int, tenant: String = "t0") {
        self.at = at
        self.lane = lane
        self.prompt = prompt
        self.output = output
        self.tenant = tenant
    }
}

/// The pool a simulation runs: replicas of one profile behind the gateway's own lanes and model
/// policy, driven through the real ``PoolStateMachine`` (lane scheduler, fairness, admission,
/// deadlines, preemption, balancer) on a virtual clock.
package struct SimulationSetup: Sendable {
    package var profile: ReplicaProfile
    package var replicas: Int
    package var lanes: [LaneConfig] = LaneConfig.defaults
    /// The model's policy (batching, routing, queue timeout); its backends are replaced by the
    /// simulated replicas.
    package var model = ModelConfig(name: "model", backends: [])
    package var totalTimeout: Duration = .seconds(600)
    package var seed: UInt64 = 1
    /// Simulated time during which requests arrive (a trace ends at its last request).
    package var duration: Duration = .seconds(600)
    /// Queue depth is sampled this many times over the run.
    package var samples = 240
    /// Stop as soon as some lane has certainly missed its attainment target (a planner's
    /// search needs no more than that, and an overloaded pool's queue only grows).
    package var stopOnceMissed = false

    package init(profile: ReplicaProfile, replicas: Int) {
        self.profile = profile
        self.replicas = replicas
    }
}

/// The outcome of a simulation, per lane.
package struct SimulationResult: Sendable {
    package struct Lane: Sendable {
        package var lane: String
        package var slo: PlanSLO
        package var target: Double
        package var offered = 0
        package var completed = 0
        /// Completed within every SLO.
        package var met = 0
        /// Refused at arrival or timed out in the queue, by reason.
        package var shed: [String: Int] = [:]
        /// Times one of its requests was stopped for a more urgent one (and went back to its queue).
        package var preempted = 0
        package var outputTokens = 0
        package var queueWaitSum = 0.0
        package var ttft = LogHistogram()
        package var e2e = LogHistogram()
        package var tpot = LogHistogram()
        package var queueDepth: [Int] = []

        package var shedTotal: Int { shed.values.reduce(0, +) }
        /// Met ÷ offered (a shed request misses).
        package var attainment: Double { offered == 0 ? 1 : Double(met) / Double(offered) }
        package var meetsTarget: Bool { slo.isEmpty ? shedTotal == 0 : attainment >= target }
        package var meanQueueWait: Double { completed == 0 ? 0 : queueWaitSum / Double(completed) }
    }

    package var lanes: [Lane]
    package var replicas: Int
    package var slotsPerReplica: Int
    /// Simulated seconds from the first arrival to the last completion.
    package var span: Double
    /// Slot-seconds held by requests.
    package var busySlotSeconds: Double
    /// The arrival window (seconds from zero to the last arrival) and the slot-seconds held within
    /// it: utilization leaves out the drain after the last arrival.
    package var window = 0.0
    package var busyInWindow = 0.0
    /// Seconds at which queue depth was sampled.
    package var sampleTimes: [Double]
    package var events: Int
    /// Stopped early: a lane had certainly missed its target (see ``SimulationSetup/stopOnceMissed``).
    package var stoppedEarly = false

    package var utilization: Double { busyInWindow / max(1e-9, Double(slotsPerReplica * replicas) * window) }
    package var meetsEveryTarget: Bool { !stoppedEarly && lanes.allSatisfy(\.meetsTarget) }
    package var completed: Int { lanes.reduce(0) { $0 + $1.completed } }
    package var outputTokens: Int { lanes.reduce(0) { $0 + $1.outputTokens } }
}

/// Values on a logarithmic grid (1% apart, 10 µs to 10⁵ s): percentiles within 0.5%, in constant
/// memory however many requests run.
package struct LogHistogram: Sendable {
    static let floor = 1e-5
    static let ratio = log(1.01)
    static let buckets = Int(log(1e5 / floor) / ratio) + 2
    var counts: [Int] = []
    package private(set) var count = 0
    package private(set) var sum = 0.0
    package private(set) var max = 0.0

    package init() {}

    package mutating func add(_ value: Double) {
        if counts.isEmpty { counts = Array(repeating: 0, count: Self.buckets) }
        let i = value <= Self.floor ? 0 : Swift.min(Self.buckets - 1, Int(log(value / Self.floor) / Self.ratio) + 1)
        counts[i] += 1
        count += 1
        sum += value
        max = Swift.max(max, value)
    }

    package var mean: Double { count == 0 ? 0 : sum / Double(count) }

    /// The `q` quantile (0…1): the geometric middle of its bucket.
    package func quantile(_ q: Double) -> Double {
        guard count > 0 else { return 0 }
        let rank = Swift.max(1, Int((q * Double(count)).rounded(.up)))
        var seen = 0
        for (i, c) in counts.enumerated() where c > 0 {
            seen += c
            if seen >= rank {
                if i == 0 { return Self.floor }
                return Swift.min(max, Self.floor * exp((Double(i) - 0.5) * Self.ratio))
            }
        }
        return max
    }
}
